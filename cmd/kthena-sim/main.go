// Command kthena-sim runs one simulated vLLM or SGLang engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"github.com/go-logr/zapr"
	"github.com/kthena/kthena/internal/sim"
	"go.uber.org/zap"
)

func main() {
	// The simulator is I/O bound: one scheduler thread serves a 16-engine
	// fleet at real time and avoids the runtime's idle-thread wake-ups
	// (8 instead of 10-11 µs of CPU per streamed token, see
	// docs/simulator.md). GOMAXPROCS in the environment overrides this.
	loadClient := len(os.Args) > 2 && os.Args[1] == "bench" && os.Args[2] == "load"
	if os.Getenv("GOMAXPROCS") == "" && !loadClient {
		runtime.GOMAXPROCS(1)
	}
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(runBench(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run serves one engine until ctx ends (SIGTERM in production) and returns
// the exit status.
func run(ctx context.Context, args []string) int {
	zl, err := zap.NewProduction()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)

	for _, a := range args {
		if a == "-h" || a == "--help" {
			fmt.Println("Usage: kthena-sim [flags]\n       kthena-sim bench cost|fidelity [flags]")
			fmt.Print(sim.FlagUsages())
			return 0
		}
	}
	cfg, ignored, err := sim.ParseArgs(args)
	if err != nil {
		log.Error(err, "bad arguments")
		return 2
	}
	if len(ignored) > 0 {
		log.Info("ignoring flags this simulator does not use", "flags", ignored)
	}
	if cfg.HashSeed == "" {
		cfg.HashSeed = os.Getenv("PYTHONHASHSEED")
	}
	if cfg.AdvertiseHost == "" {
		// Peers reach a pod at its IP, which the downward API provides.
		cfg.AdvertiseHost = os.Getenv("POD_IP")
	}
	cfg = cfg.WithDefaults()
	engine, err := sim.New(cfg, sim.WithLogger(log))
	if err != nil {
		log.Error(err, "cannot start engine")
		return 1
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		engine.Close()
		log.Error(err, "cannot listen")
		return 1
	}
	log.Info("serving", "addr", ln.Addr().String(), "engine", cfg.Engine, "profile", cfg.Profile)
	if err := engine.Serve(ctx, ln); err != nil {
		if errors.Is(err, sim.ErrCrashed) {
			log.Info("exiting after injected crash")
			return 3
		}
		log.Error(err, "server failed")
		return 1
	}
	log.Info("stopped")
	return 0
}
