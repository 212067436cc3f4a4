package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Fleet is a set of engines running in this process, each on its own
// 127.0.0.1 listener.
type Fleet struct {
	// Engines are the engines in the order of the configs. Restart replaces
	// an entry: code that restarts engines while reading them uses Engine.
	Engines []*Engine
	// Addrs are the engines' host:port, in the order of the configs.
	Addrs  []string
	ctx    context.Context
	cancel context.CancelFunc
	tok    *tokenizer.Tokenizer
	log    logr.Logger

	mu    sync.RWMutex
	slots []*slot
}

// slot is one engine position: the engine serving it now and those it
// replaced (Restart).
type slot struct {
	cfg     Config
	cancel  context.CancelFunc
	errc    chan error
	retired []*Engine
	down    bool
}

// FleetOptions are the shared parts of a fleet.
type FleetOptions struct {
	Logger logr.Logger
	// Tokenizer is shared by the engines; nil loads one.
	Tokenizer *tokenizer.Tokenizer
}

// StartLocal starts one engine per config on 127.0.0.1:0 (the Port field is
// ignored) and serves them until ctx ends or Close is called. The engines
// share one tokenizer.
func StartLocal(ctx context.Context, log logr.Logger, cfgs ...Config) (*Fleet, error) {
	return StartFleet(ctx, FleetOptions{Logger: log}, cfgs...)
}

// StartFleet is StartLocal with options, for callers that start many fleets
// and want to load the tokenizer once.
func StartFleet(ctx context.Context, o FleetOptions, cfgs ...Config) (*Fleet, error) {
	tok := o.Tokenizer
	if tok == nil {
		t, err := tokenizer.New("")
		if err != nil {
			return nil, err
		}
		tok = t
	}
	log := o.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &Fleet{ctx: ctx, cancel: cancel, tok: tok, log: log}
	for i, c := range cfgs {
		c.Host = "127.0.0.1"
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Close()
			return nil, err
		}
		s := &slot{cfg: c}
		e, err := f.serve(i, s, ln)
		if err != nil {
			ln.Close()
			f.Close()
			return nil, fmt.Errorf("engine %d: %w", i, err)
		}
		f.slots = append(f.slots, s)
		f.Engines = append(f.Engines, e)
		f.Addrs = append(f.Addrs, ln.Addr().String())
	}
	return f, nil
}

// serve starts an engine for slot i on ln (f.mu held, or before the fleet
// is shared).
func (f *Fleet) serve(i int, s *slot, ln net.Listener) (*Engine, error) {
	e, err := New(s.cfg, WithTokenizer(f.tok), WithLogger(f.log.WithValues("replica", i)))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(f.ctx)
	s.cancel, s.errc = cancel, make(chan error, 1)
	errc := s.errc
	go func() { errc <- e.Serve(ctx, ln) }()
	return e, nil
}

// URL is the base URL of engine i.
func (f *Fleet) URL(i int) string { return "http://" + f.Addrs[i] }

// Engine is the engine serving position i now.
func (f *Fleet) Engine(i int) *Engine {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.Engines[i]
}

// Generations are every engine that has served position i, oldest first
// (the current one last): counters of a restarted position are their sums.
func (f *Fleet) Generations(i int) []*Engine {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append(append([]*Engine(nil), f.slots[i].retired...), f.Engines[i])
}

// Up reports whether engine i is serving (not inside Restart).
func (f *Fleet) Up(i int) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return !f.slots[i].down
}

// Restart restarts engine i the way a pod restarts: it stops accepting
// connections, lets its requests finish for up to the config's
// ShutdownGrace, stays down for down (wall time), then a new engine with
// the same configuration serves the same address (and KV-event endpoint)
// with an empty cache and its event sequence back at the start.
func (f *Fleet) Restart(i int, down time.Duration) error {
	f.mu.Lock()
	s := f.slots[i]
	if s.down {
		f.mu.Unlock()
		return fmt.Errorf("engine %d is already restarting", i)
	}
	s.down = true
	cancel, errc := s.cancel, s.errc
	s.errc = nil // consumed here; Close skips it until the new engine runs
	f.mu.Unlock()
	cancel()
	if err := <-errc; err != nil && !errors.Is(err, ErrCrashed) {
		return err
	}
	select {
	case <-time.After(down):
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
	// The port was just released; another socket may hold it briefly.
	var ln net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if ln, err = net.Listen("tcp", f.Addrs[i]); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	var e *Engine
	f.mu.Lock()
	defer f.mu.Unlock()
	for try := 0; try < 50 && f.ctx.Err() == nil; try++ { // the KV-event port, likewise
		if e, err = f.serve(i, s, ln); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if e == nil {
		ln.Close()
		return errors.Join(err, f.ctx.Err())
	}
	s.retired = append(s.retired, f.Engines[i])
	f.Engines[i] = e
	s.down = false
	return nil
}

// Close shuts every engine down gracefully and waits for them.
func (f *Fleet) Close() error {
	f.cancel()
	var errs []error
	f.mu.Lock()
	var errcs []chan error
	for _, s := range f.slots {
		if s.errc != nil {
			errcs = append(errcs, s.errc)
		}
	}
	f.mu.Unlock()
	for _, errc := range errcs {
		if err := <-errc; err != nil && !errors.Is(err, ErrCrashed) && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	f.Engines = nil
	return errors.Join(errs...)
}
