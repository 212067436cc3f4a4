// Command kthena-router is Kthena's OpenAI-compatible, LLM-aware router.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"

	"github.com/kthena/kthena/internal/router/runner"
)

func main() {
	var o runner.Options
	o.BindFlags(flag.CommandLine)
	flag.Parse()
	log := stdr.New(nil)
	o.Log = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "kthena-router:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o runner.Options, log logr.Logger) error {
	r, err := runner.Start(ctx, o)
	if err != nil {
		return err
	}
	log.Info("kthena-router serving", "addr", r.Addr())
	<-ctx.Done()
	log.Info("draining")
	return r.Shutdown(context.Background())
}
