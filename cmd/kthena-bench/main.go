// Command kthena-bench runs the router benchmarks and writes Markdown (and
// SVG plots) under docs/bench/.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/stdr"

	"github.com/kthena/kthena/internal/router/bench"
)

// subcommands maps a bench name to its runner; each bench's file adds its
// own entry in an init function, so that benches live in separate files.
var subcommands = map[string]func(args []string) error{
	"overhead": overhead,
	"pd":       pd,
	// Internal: the processes of the overhead bench.
	"router-child": bench.ServeRouterChild,
	"engine-child": bench.ServeEngineChild,
	"relay-child":  bench.ServeRelayChild, // a layer-4 relay in the router's place (-relay)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	run, ok := subcommands[os.Args[1]]
	if !ok {
		usage()
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "kthena-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	var names []string
	for name := range subcommands {
		if !strings.HasSuffix(name, "-child") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	fmt.Fprintf(os.Stderr, "usage: kthena-bench %s [flags]\n", strings.Join(names, "|"))
	os.Exit(2)
}

func write(out, name, content string) error {
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, name), []byte(content), 0o644)
}

func overhead(args []string) error {
	fs := flag.NewFlagSet("overhead", flag.ExitOnError)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o := bench.OverheadOptions{RouterCommand: []string{self, "router-child"}, EngineCommand: []string{self, "engine-child"}, SearchRates: []float64{1000, 2000, 3000, 4000, 6000, 8000, 12000}}
	fs.IntVar(&o.Engines, "engines", 4, "echo engines")
	fs.Float64Var(&o.Rate, "rate", 1000, "open-loop rate of the small-prompt scenarios (req/s)")
	fs.IntVar(&o.LargeBytes, "large-bytes", 200<<10, "prompt size of the large-prompt scenario")
	fs.IntVar(&o.LargeConcurrency, "large-concurrency", 150, "closed-loop clients of the large-prompt scenario")
	fs.DurationVar(&o.EngineTime, "engine-time", 500*time.Millisecond, "engine time per request in the large-prompt scenario that models real engines (negative: skip it)")
	fs.DurationVar(&o.Duration, "duration", 8*time.Second, "time per scenario")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the router child's CPU profile here")
	fs.StringVar(&o.Only, "only", "", "run only the scenarios whose name contains this (\"rate search\": the rate search)")
	routerBinary := fs.String("router-binary", "", "run the router child from this kthena-bench binary (for example one built from another commit, to compare)")
	relay := fs.Bool("relay", false, "measure a layer-4 relay (no HTTP, no scheduling) in the router's place: the cost of the hop alone")
	inProcess := fs.Bool("engines-in-process", false, "run the engines in the benchmark process, next to the clients (the direct path then crosses no process boundary)")
	fs.IntVar(&o.RouterProcs, "router-procs", 0, "GOMAXPROCS of the router process (0: all cores)")
	out := fs.String("out", "docs/bench", "output directory")
	mode := fs.String("mode", "standalone", "standalone: file provider, access log off; deployment: Kubernetes mode against a real kube-apiserver, access log on, /metrics scraped (writes overhead-deployment.md)")
	var d bench.DeploymentOptions
	fs.IntVar(&d.Rounds, "rounds", 2, "deployment mode: alternated phases per variant and scenario")
	fs.IntVar(&d.SmallClients, "small-clients", 16, "deployment mode: closed-loop clients of small requests")
	fs.IntVar(&d.StreamClients, "stream-clients", 50, "deployment mode: closed-loop clients of streamed requests")
	fs.IntVar(&d.StreamChunks, "stream-chunks", 256, "deployment mode: chunks per streamed answer")
	baseline := fs.String("baseline-binary", "", "deployment mode: also run the router of this kthena-bench binary (for example one built from the commit before a change), alternated with this build's")
	routerEnv := fs.String("router-env", "", "deployment mode: comma-separated VAR=value added to the routers' environment (GODEBUG=gctrace=1)")
	fs.StringVar(&d.LogDir, "log-dir", "", "deployment mode: keep the routers' access logs here")
	_ = fs.Parse(args)
	if *mode == "deployment" {
		d.Engines, d.Rate, d.Duration, d.LargeBytes, d.LargeClients = o.Engines, o.Rate, o.Duration, o.LargeBytes, o.LargeConcurrency
		d.EngineTime = o.EngineTime
		d.RouterCommand, d.EngineCommand, d.CPUProfile, d.Only = o.RouterCommand, o.EngineCommand, o.CPUProfile, o.Only
		if *routerBinary != "" {
			d.RouterCommand = []string{*routerBinary, "router-child"}
		}
		if *baseline != "" {
			d.BaselineCommand = []string{*baseline, "router-child"}
		}
		if *routerEnv != "" {
			d.RouterEnv = strings.Split(*routerEnv, ",")
		}
		return deployment(d, *out)
	} else if *mode != "standalone" {
		return fmt.Errorf("-mode %q: want standalone or deployment", *mode)
	}
	if *inProcess {
		o.EngineCommand = nil
	}
	if *routerBinary != "" {
		o.RouterCommand = []string{*routerBinary, "router-child"}
	}
	if *relay {
		o.RouterCommand = []string{self, "relay-child"}
	}
	start, load0 := time.Now(), loadavg()
	res, err := bench.RunOverhead(context.Background(), o)
	if err != nil {
		return err
	}
	run := fmt.Sprintf("Run %s UTC, %s wall on %d CPUs; load average (1/5/15 min) %s at the start, %s at the end (the run's own processes included). Latency percentiles move with other jobs on the machine.\n\n",
		start.UTC().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadavg())
	md := bench.Markdown(res, o)
	fmt.Print(md)
	if err := write(*out, "overhead.svg", bench.RateSVG(res)); err != nil {
		return err
	}
	return write(*out, "overhead.md", "# Router overhead\n\n`go run ./cmd/kthena-bench overhead`\n\n"+run+md+"\n![latency through the router by offered rate](overhead.svg)\n")
}

func deployment(o bench.DeploymentOptions, out string) error {
	start, load0 := time.Now(), loadavg()
	res, err := bench.RunDeployment(context.Background(), o)
	if err != nil {
		return err
	}
	run := fmt.Sprintf("Run %s UTC, %s wall on %d CPUs; load average (1/5/15 min) %s at the start, %s at the end (the run's own processes included; other jobs share the machine).\n\n",
		start.UTC().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadavg())
	md := bench.DeploymentMarkdown(res, o)
	fmt.Print(run + md)
	args := strings.Join(os.Args[1:], " ")
	return write(out, "overhead-deployment.md", "# Router overhead, deployed\n\n`go run ./cmd/kthena-bench "+args+"`\n\n"+run+md)
}

type savedRows struct {
	Note string
	Rows []bench.QualityRow
}

func writeQuality(o bench.QualityOptions, rows []bench.QualityRow, out string) error {
	md := bench.QualityMarkdown(rows, o)
	fmt.Print(md)
	if err := write(out, "quality.svg", bench.QualitySVG(rows)); err != nil {
		return err
	}
	return write(out, "quality.md", "# Routing quality\n\n`go run ./cmd/kthena-bench quality`\n\n"+md+"\n![TTFT p90, output throughput and prefix hit rate per policy and workload](quality.svg)\n")
}

// replotQuality renders saved rows with the current report code.
func replotQuality(o bench.QualityOptions, files, out string) error {
	var s savedRows
	var notes []string
	for _, file := range strings.Split(files, ",") {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var f savedRows
		if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		replaced := map[string]bool{}
		for _, r := range f.Rows {
			replaced[r.Workload] = true
		}
		keep := s.Rows[:0]
		for _, r := range s.Rows {
			if !replaced[r.Workload] {
				keep = append(keep, r)
			}
		}
		s.Rows = append(keep, f.Rows...)
		notes = append(notes, f.Note)
	}
	s.Note = strings.Join(notes, " ")
	// Order the rows as the workloads are listed.
	order := map[string]int{}
	for i, w := range o.Workloads {
		order[w.Name] = i
	}
	slices.SortStableFunc(s.Rows, func(a, b bench.QualityRow) int { return order[a.Workload] - order[b.Workload] })
	seen := map[string]bool{}
	for _, r := range s.Rows {
		seen[r.Workload] = true
	}
	var ws []bench.Workload
	for _, w := range o.Workloads {
		if seen[w.Name] {
			ws = append(ws, w)
		}
	}
	o.Workloads, o.Note = ws, s.Note
	return writeQuality(o, s.Rows, out)
}

// loadavg is the first three fields of /proc/loadavg, or "n/a".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

func pd(args []string) error {
	fs := flag.NewFlagSet("pd", flag.ExitOnError)
	o := bench.PDOptions{Workloads: bench.PDWorkloads(), Setups: bench.PDSetups(), Log: stdr.New(nil)}
	fs.IntVar(&o.Engines, "engines", 4, "simulated engines (aggregated, or prefill + decode)")
	fs.StringVar(&o.Profile, "profile", "llama-3.1-8b-h100", "simulator GPU profile")
	fs.Float64Var(&o.TimeScale, "time-scale", 1, "wall seconds per simulated second")
	fs.StringVar(&o.Connector, "connector", "nixl", "kvConnector type of the disaggregated setups")
	only := fs.String("setups", "", "comma-separated setup names to run (default all)")
	wl := fs.String("workload", "", "run only the workloads whose name contains this (case-insensitive)")
	scale := fs.Float64("requests", 1, "scale every workload's request count by this factor")
	rate := fs.Float64("rate", 0, "override every workload's arrival rate (requests per simulated second; multi-turn: users starting per second)")
	var extra []string
	fs.Func("config", "add a setup: name=prefill-engines:router-config-file (repeatable)", func(v string) error { extra = append(extra, v); return nil })
	out := fs.String("out", "docs/bench", "output directory")
	_ = fs.Parse(args)
	var err error
	if o.Setups, err = named(o.Setups, *only, func(s bench.PDSetup) string { return s.Name }); err != nil {
		return fmt.Errorf("-setups: %w", err)
	}
	for _, e := range extra {
		name, spec, ok := strings.Cut(e, "=")
		n, file, ok2 := strings.Cut(spec, ":")
		p, err := strconv.Atoi(n)
		if !ok || !ok2 || err != nil {
			return fmt.Errorf("-config %q: want name=prefill-engines:file", e)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		o.Setups = append(o.Setups, bench.PDSetup{Name: name, Prefill: p, Config: string(b)})
	}
	var ws []bench.Workload
	for _, w := range o.Workloads {
		if *wl == "" || strings.Contains(strings.ToLower(w.Name), strings.ToLower(*wl)) {
			w.Groups = max(1, int(float64(w.Groups)**scale))
			if *rate > 0 {
				w.Rate = *rate
			}
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		return fmt.Errorf("-workload %q matches no workload", *wl)
	}
	o.Workloads = ws
	load0 := loadavg()
	start := time.Now()
	rows, err := bench.RunPD(context.Background(), o)
	if err != nil {
		return err
	}
	o.Note = fmt.Sprintf("Last run: %s UTC, %s wall on %d CPUs shared with other jobs; load average (1/5/15 min) %s at the start, %s at the end.",
		start.UTC().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadavg())
	md := bench.PDMarkdown(rows, o)
	fmt.Print(md)
	if err := write(*out, "pd.svg", bench.PDSVG(rows)); err != nil {
		return err
	}
	return write(*out, "pd.md", "# Prefill/decode disaggregation\n\n`go run ./cmd/kthena-bench pd`\n\n"+md+"\n![TTFT p90, ITL p90 and E2E p95 per setup and workload](pd.svg)\n")
}

// named keeps the items whose name is in the comma-separated list; an empty
// list keeps them all.
func named[T any](items []T, list string, name func(T) string) ([]T, error) {
	if list == "" {
		return items, nil
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var kept []T
	var known []string
	for _, it := range items {
		known = append(known, name(it))
		if want[name(it)] {
			kept = append(kept, it)
			delete(want, name(it))
		}
	}
	if len(want) > 0 {
		unknown := slices.Sorted(maps.Keys(want))
		return nil, fmt.Errorf("unknown name(s) %q; known: %q", unknown, known)
	}
	return kept, nil
}
