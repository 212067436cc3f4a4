package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/faultbench"
)

func init() { subcommands["faults"] = faults }

// faults runs the fault-injection scenarios on the local platform.
func faults(args []string) error {
	fs := flag.NewFlagSet("faults", flag.ExitOnError)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o := faultbench.Options{Log: logr.Discard()}
	fs.StringVar(&o.BinDir, "bin-dir", filepath.Dir(self), "directory of kthena-controller-manager, kthena-router and kthena-sim")
	fs.StringVar(&o.AssetsDir, "assets-dir", os.Getenv("KUBEBUILDER_ASSETS"), "directory of etcd, kube-apiserver and kube-controller-manager")
	fs.StringVar(&o.WorkDir, "work-dir", filepath.Join(os.TempDir(), "kthena-faults"), "where the platform's state goes")
	fs.IntVar(&o.Clients, "clients", 8, "closed-loop clients (every other request streamed)")
	fs.IntVar(&o.MaxTokens, "max-tokens", 48, "tokens per answer")
	fs.Float64Var(&o.TimeScale, "time-scale", 0.5, "the engines' --time-scale")
	fs.DurationVar(&o.Before, "before", 5*time.Second, "load before each fault (the baseline)")
	fs.DurationVar(&o.After, "after", 5*time.Second, "load kept after each fault is handled")
	only := fs.String("only", "", "comma-separated scenario names to run (default: all)")
	out := fs.String("out", "", "write faults.md here (e.g. docs/bench)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	began := time.Now()
	o.Progress = func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, a...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rs, err := faultbench.Run(ctx, o)
	table := faultbench.Table(rs)
	fmt.Print(table)
	if s := faultbench.Samples(rs); s != "" {
		fmt.Print("\nWhat failed and lost requests saw:\n\n" + s)
	}
	if werr := write(*out, "faults.md", "# Fault injection under load\n\n"+
		fmt.Sprintf("`kthena-bench faults` (%d clients, every other request streamed, %d tokens per answer, engines at --time-scale %g, %s of load before each fault and %s after), on the local platform.\n\n",
			o.Clients, o.MaxTokens, o.TimeScale, o.Before, o.After)+table+"\n"+faultbench.Samples(rs)); werr != nil && err == nil {
		err = werr
	}
	return err
}
