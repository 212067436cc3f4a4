package sim

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Fleet is a set of engines running in this process, each on its own
// 127.0.0.1 listener.
type Fleet struct {
	Engines []*Engine
	// Addrs are the engines' host:port, in the order of the configs.
	Addrs  []string
	cancel context.CancelFunc
	errs   chan error
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
	f := &Fleet{cancel: cancel, errs: make(chan error, len(cfgs))}
	for i, c := range cfgs {
		c.Host = "127.0.0.1"
		e, err := New(c, WithTokenizer(tok), WithLogger(log.WithValues("replica", i)))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("engine %d: %w", i, err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			e.Close()
			f.Close()
			return nil, err
		}
		f.Engines = append(f.Engines, e)
		f.Addrs = append(f.Addrs, ln.Addr().String())
		go func() { f.errs <- e.Serve(ctx, ln) }()
	}
	return f, nil
}

// URL is the base URL of engine i.
func (f *Fleet) URL(i int) string { return "http://" + f.Addrs[i] }

// Close shuts every engine down gracefully and waits for them.
func (f *Fleet) Close() error {
	f.cancel()
	var errs []error
	for range f.Engines {
		if err := <-f.errs; err != nil && !errors.Is(err, ErrCrashed) {
			errs = append(errs, err)
		}
	}
	f.Engines = nil
	return errors.Join(errs...)
}
