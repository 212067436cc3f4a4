// Command kthena-sim runs one simulated vLLM or SGLang engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

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
	var code int
	if len(os.Args) > 1 && os.Args[1] == "lmcache-server" {
		code = runLMCacheServer(ctx, os.Args[2:])
	} else {
		code = run(ctx, os.Args[1:])
	}
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
			fmt.Println("Usage: kthena-sim [flags]\n       kthena-sim bench cost|fidelity [flags]\n       kthena-sim lmcache-server [--host H] [--port P]")
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

// runLMCacheServer serves a shared LMCache store (see docs/simulator.md)
// until ctx ends.
func runLMCacheServer(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lmcache-server", flag.ContinueOnError)
	host := fs.String("host", "0.0.0.0", "listen host")
	port := fs.Int("port", 65432, "listen port")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return serveLMCache(ctx, ln)
}

func serveLMCache(ctx context.Context, ln net.Listener) int {
	srv := &http.Server{Handler: sim.NewLMCacheServer(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
