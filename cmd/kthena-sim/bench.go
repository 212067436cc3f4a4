package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kthena/kthena/internal/sim/bench"
	"github.com/spf13/pflag"
)

// runBench implements `kthena-sim bench cost|fidelity`.
func runBench(args []string) int {
	if len(args) == 0 || (args[0] != "cost" && args[0] != "fidelity") {
		fmt.Fprintln(os.Stderr, "usage: kthena-sim bench cost|fidelity [flags]")
		return 2
	}
	ctx := context.Background()
	if args[0] == "fidelity" {
		rows, err := bench.RunFidelity(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Print(bench.FormatFidelity(rows))
		return 0
	}
	o := bench.DefaultCostOptions()
	fs := pflag.NewFlagSet("bench cost", pflag.ContinueOnError)
	fs.IntVar(&o.Engines, "engines", o.Engines, "engines in the fleet")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "concurrent streaming clients")
	fs.IntVar(&o.OutputTokens, "output-tokens", o.OutputTokens, "tokens per response")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "requests per client, back to back")
	fs.Float64Var(&o.TimeScale, "time-scale", o.TimeScale, "1 = real time")
	fs.StringVar(&o.Profile, "profile", "", "performance profile")
	if err := fs.Parse(args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := bench.RunCost(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(bench.FormatCost(r))
	return 0
}
