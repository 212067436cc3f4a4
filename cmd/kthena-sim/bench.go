package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/kthena/kthena/internal/sim/bench"
	"github.com/spf13/pflag"
)

// runBench implements `kthena-sim bench cost|fidelity`.
func runBench(args []string) int {
	if len(args) == 0 || (args[0] != "cost" && args[0] != "fidelity" && args[0] != "load") {
		fmt.Fprintln(os.Stderr, "usage: kthena-sim bench cost|fidelity [flags]")
		return 2
	}
	ctx := context.Background()
	if args[0] == "load" {
		return runLoad(ctx)
	}
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
	inProcess := fs.Bool("in-process-clients", false, "run the clients in this process (their CPU is then counted)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	procs := fs.Int("gomaxprocs", 0, "GOMAXPROCS for the simulator process (0 = keep the process setting)")
	if err := fs.Parse(args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if !*inProcess {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		o.ClientCommand = []string{self, "bench", "load"}
	}
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	r, err := bench.RunCost(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Print(bench.FormatCost(r))
	return 0
}

// runLoad is the child side of `bench cost`: LoadOptions JSON on stdin,
// LoadResult JSON on stdout.
func runLoad(ctx context.Context) int {
	var o bench.LoadOptions
	if err := json.NewDecoder(os.Stdin).Decode(&o); err != nil {
		fmt.Fprintln(os.Stderr, "bench load:", err)
		return 2
	}
	r, err := bench.RunLoad(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench load:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}
