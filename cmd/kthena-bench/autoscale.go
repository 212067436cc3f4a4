package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/stdr"

	"github.com/kthena/kthena/internal/autoscalebench"
)

func init() { subcommands["autoscale"] = autoscale }

// autoscaleRun is what -save writes and -replot reads.
type autoscaleRun struct {
	Note    string
	Options autoscalebench.Options
	Results []autoscalebench.Result
}

func autoscale(args []string) error {
	fs := flag.NewFlagSet("autoscale", flag.ContinueOnError)
	duration := fs.Duration("duration", 240*time.Second, "wall time of the trace, per configuration")
	compression := fs.Float64("compression", 5, "the trace and the autoscaler's clock (period, windows, panic hold) run this many times faster than the time they stand for")
	startup := fs.Duration("startup-delay", 10*time.Second, "engine start-up time (wall; not compressed)")
	slo := fs.Duration("slo", time.Second, "TTFT service-level objective")
	configs := fs.String("configs", strings.Join(autoscalebench.DefaultConfigNames, ","), "comma-separated configurations to run, in order (static-peak, defaults, defaults-zero, burst, burst-zero)")
	base := fs.Float64("base-rate", 4.5, "the day's highest request rate without the burst (req/s)")
	staticReplicas := fs.Int("static-replicas", 0, "replicas of static-peak (0: enough for the burst's peak at the policy's running target)")
	maxReplicas := fs.Int("max-replicas", 0, "the policies' maxReplicas (0: the static count)")
	maxTokens := fs.Int("max-tokens", 32, "output tokens per request")
	ttft := fs.Duration("engine-ttft", 40*time.Millisecond, "the engine's prefill step (its TTFT when idle)")
	itl := fs.Duration("engine-itl", 40*time.Millisecond, "the engine's decode step")
	seqs := fs.Int("max-num-seqs", 8, "requests one engine runs at once (more wait)")
	running := fs.Int("running-target", 4, "the policies' num_requests_running target per replica")
	waiting := fs.Int("waiting-target", 2, "the policies' num_requests_waiting target per replica")
	seed := fs.Uint64("seed", 1, "seed of the arrivals (the same for every configuration)")
	quick := fs.Bool("quick", false, "a smoke run of about 3 minutes: static-peak and burst-zero over a 70 s trace at 10x compression (overrides -duration, -compression, -configs)")
	out := fs.String("out", "docs/bench", "output directory of autoscaling.md and autoscaling.svg (empty: print only)")
	notes := fs.String("notes", "", "a Markdown file appended to the report as its analysis")
	save := fs.String("save", "", "also write the measurements as JSON to this file")
	replot := fs.String("replot", "", "do not run: write the report from -save files (comma-separated; a later file's configurations are added, or replace those of the same name)")
	binDir := fs.String("bin-dir", "", "directory of kthena-controller-manager, kthena-router and kthena-sim (default: beside this binary, else ./bin)")
	assetsDir := fs.String("assets-dir", "", "directory of etcd, kube-apiserver and kubectl (default: the platform's cache)")
	sourceDir := fs.String("source-dir", "", "the source tree (default: the working directory)")
	workDir := fs.String("work-dir", filepath.Join(os.TempDir(), "kthena-autoscale-bench"), "parent of each run's state directory")
	keep := fs.Bool("keep-state", false, "keep each run's state directory (logs) after it")
	verbosity := fs.Int("v", 0, "log verbosity (1: the platform's progress lines)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("autoscale: unexpected arguments %q", fs.Args())
	}
	stdr.SetVerbosity(*verbosity)
	logger := stdr.New(log.New(os.Stderr, "", log.LstdFlags)).WithName("autoscale-bench")
	if *replot != "" {
		run, err := readAutoscaleRuns(strings.Split(*replot, ","))
		if err != nil {
			return err
		}
		return writeAutoscale(run, *out, *notes)
	}
	if *quick {
		*duration, *compression, *configs = 70*time.Second, 10, "static-peak,burst-zero"
	}
	var bad []string
	check := func(ok bool, msg string) {
		if !ok {
			bad = append(bad, msg)
		}
	}
	check(*duration >= 30*time.Second, "-duration must be at least 30s")
	check(*compression >= 1 && !math.IsInf(*compression, 0), "-compression must be at least 1")
	check(*startup >= 0, "-startup-delay must not be negative")
	check(*slo > 0, "-slo must be positive")
	check(*base > 0 && !math.IsInf(*base, 0), "-base-rate must be positive")
	check(*staticReplicas >= 0 && *maxReplicas >= 0, "-static-replicas and -max-replicas must not be negative")
	check(*maxTokens > 0, "-max-tokens must be positive")
	check(*ttft > 0 && *itl > 0, "-engine-ttft and -engine-itl must be positive")
	check(*seqs > 0 && *running > 0 && *waiting > 0, "-max-num-seqs, -running-target and -waiting-target must be positive")
	cfgs, err := autoscalebench.SelectConfigs(strings.Split(*configs, ","))
	if err != nil {
		bad = append(bad, "-configs: "+err.Error())
	}
	if len(bad) > 0 {
		return fmt.Errorf("autoscale: %s", strings.Join(bad, "; "))
	}
	tr := autoscalebench.DefaultTrace(*duration, *base)
	// A replica at the running target serves running/service req/s.
	service := *ttft + time.Duration(*maxTokens)*(*itl)
	perReplica := float64(*running) / service.Seconds()
	if *staticReplicas == 0 {
		*staticReplicas = int(math.Ceil(tr.Peak() / perReplica))
	}
	if *maxReplicas == 0 {
		*maxReplicas = *staticReplicas
	}
	if *binDir == "" {
		*binDir = defaultBinDir()
	}
	if *sourceDir == "" {
		if wd, err := os.Getwd(); err == nil {
			*sourceDir = wd
		}
	}
	o := autoscalebench.Options{
		Trace: tr, Compression: *compression,
		Engine:         autoscalebench.Engine{TTFT: *ttft, ITL: *itl, MaxNumSeqs: *seqs, StartupDelay: *startup},
		Scaling:        autoscalebench.Scaling{RunningTarget: *running, WaitingTarget: *waiting, MaxReplicas: int32(*maxReplicas)},
		StaticReplicas: int32(*staticReplicas), MaxTokens: *maxTokens, SLO: *slo, Seed: *seed, Configs: cfgs,
		BinDir: *binDir, AssetsDir: *assetsDir, SourceDir: *sourceDir, WorkDir: *workDir, KeepState: *keep,
		Log: logger,
	}
	began := time.Now()
	o.Progress = func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	o.Progress("%d configurations; static-peak %d replicas (peak %.1f req/s, %.2f req/s per replica at %d running), policies' maxReplicas %d; autoscaler period %s (15 s / %g)",
		len(cfgs), *staticReplicas, tr.Peak(), perReplica, *running, *maxReplicas, o.SyncPeriod(), *compression)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	load0 := loadavg()
	results, err := autoscalebench.Run(ctx, o)
	if err != nil && len(results) == 0 {
		return err
	}
	run := autoscaleRun{
		Note: fmt.Sprintf("Last run: %s UTC, %s wall on %d CPUs shared with other jobs; load average (1/5/15 min) %s at the start, %s at the end.",
			began.UTC().Format("2006-01-02 15:04"), time.Since(began).Round(time.Second), runtime.NumCPU(), load0, loadavg()),
		Options: o, Results: results,
	}
	if *save != "" {
		b, jerr := json.MarshalIndent(run, "", "  ")
		if jerr != nil {
			return jerr
		}
		if jerr := os.WriteFile(*save, b, 0o644); jerr != nil {
			return jerr
		}
	}
	if werr := writeAutoscale(run, *out, *notes); werr != nil {
		return werr
	}
	return err
}

// defaultBinDir is the directory of this binary when the platform's
// binaries are there (make build), else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "kthena-sim")); err == nil {
			return dir
		}
	}
	abs, _ := filepath.Abs("bin")
	return abs
}

func writeAutoscale(run autoscaleRun, out, notesFile string) error {
	o := run.Options
	tables := "## Results\n\n" + autoscalebench.Table(run.Results, o) +
		"\n## Cold starts\n\nFrom the first request that found no ready pod to its first token at the client.\n\n" + autoscalebench.ColdStartTable(run.Results) +
		"\n## Targets\n\n" + autoscalebench.ChecksMarkdown(autoscalebench.Checks(run.Results, o))
	fmt.Print(tables)
	if out == "" {
		return nil
	}
	notes := ""
	if notesFile != "" {
		b, err := os.ReadFile(notesFile)
		if err != nil {
			return err
		}
		notes = "\n" + string(b)
	}
	md := "# Autoscaling under a day's trace\n\n`go run ./cmd/kthena-bench autoscale`\n\n" + run.Note + "\n\n" +
		autoscalebench.Method(o) + "\n" + tables + "\n![replicas and request rate over the trace](autoscaling.svg)\n" + notes
	if err := write(out, "autoscaling.svg", autoscalebench.SVG(run.Results, o.Trace)); err != nil {
		return err
	}
	return write(out, "autoscaling.md", md)
}

// readAutoscaleRuns merges saved runs: the first file's options, every
// file's configurations in order (a later one replaces one of the same
// name), and their notes.
func readAutoscaleRuns(files []string) (autoscaleRun, error) {
	var run autoscaleRun
	var notes []string
	for i, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return run, err
		}
		var r autoscaleRun
		if err := json.Unmarshal(b, &r); err != nil {
			return run, fmt.Errorf("-replot %s: %w", file, err)
		}
		if i == 0 {
			run.Options = r.Options
			run.Options.Configs = nil
		}
		notes = append(notes, r.Note)
		for _, res := range r.Results {
			replaced := false
			for k := range run.Results {
				if run.Results[k].Config.Name == res.Config.Name {
					run.Results[k], replaced = res, true
				}
			}
			if !replaced {
				run.Results = append(run.Results, res)
			}
		}
	}
	// In the order the configurations are listed.
	order := map[string]int{}
	for i, c := range autoscalebench.Configs() {
		order[c.Name] = i
	}
	slices.SortStableFunc(run.Results, func(a, b autoscalebench.Result) int { return order[a.Config.Name] - order[b.Config.Name] })
	for _, res := range run.Results {
		run.Options.Configs = append(run.Options.Configs, res.Config)
	}
	run.Note = strings.Join(notes, " ")
	return run, nil
}
