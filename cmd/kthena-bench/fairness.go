package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/kthena/kthena/internal/router/bench"
)

func init() { subcommands["fairness"] = fairness }

// fairness runs the fair-queue and rate-limit bench (docs/bench/fairness.md).
func fairness(args []string) error {
	fs := flag.NewFlagSet("fairness", flag.ExitOnError)
	o := bench.FairnessOptions{Window: 10 * time.Second}
	fs.IntVar(&o.Engines, "engines", 4, "simulated engines")
	fs.IntVar(&o.MaxNumSeqs, "max-num-seqs", 8, "slots per engine (requests beyond them wait in the engine)")
	fs.IntVar(&o.PerPod, "per-pod", 0, "maxInFlightPerPod of the fixed-capacity Kthena policy (0: -max-num-seqs)")
	fs.DurationVar(&o.Duration, "duration", 50*time.Second, "time of each scenario run per policy")
	fs.DurationVar(&o.Warmup, "warmup", 10*time.Second, "start of each run left out of throughput and fairness windows")
	fs.DurationVar(&o.Solo, "solo", 20*time.Second, "time of the steady tenant's solo run")
	fs.DurationVar(&o.LimitDuration, "limit-duration", 20*time.Second, "time of each rate-limit measurement")
	fs.IntVar(&o.OverheadRequests, "overhead-requests", 2000, "requests per path of the empty-queue latency measurement")
	fs.StringVar(&o.Only, "only", "", "comma-separated parts to run: a, b, c, overhead, limits (default all)")
	quick := fs.Bool("quick", false, "short runs (a smoke test: figures are noisy)")
	out := fs.String("out", "docs/bench", "output directory (empty: print only)")
	_ = fs.Parse(args)
	if *quick {
		o.Duration, o.Warmup, o.Window, o.Solo, o.LimitDuration, o.OverheadRequests = 16*time.Second, 4*time.Second, 4*time.Second, 8*time.Second, 6*time.Second, 300
	}
	o.Progress = func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, a...)...)
	}
	start, load0 := time.Now(), loadavg()
	res, err := bench.RunFairness(context.Background(), o)
	if err != nil {
		return err
	}
	res.Options.Note = fmt.Sprintf("Run %s UTC, %s wall on %d CPUs shared with other jobs; load average (1/5/15 min) %s at the start, %s at the end.",
		start.UTC().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadavg())
	md := bench.FairnessMarkdown(res)
	fmt.Print(md)
	if err := write(*out, "fairness.svg", bench.FairnessSVG(res)); err != nil {
		return err
	}
	return write(*out, "fairness.md", "# Fairness and rate limits\n\n`go run ./cmd/kthena-bench fairness`\n\n"+md+"\n![weighted tokens served per tenant over time, per scenario and policy](fairness.svg)\n")
}
