// Package engine is the simulated inference engine core: a continuous
// batching scheduler over a paged KV cache, priced by the performance model
// and paced by a scaled clock. One goroutine per engine runs steps; tokens of
// every running sequence are emitted once per step.
package engine

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// FinishReason says why a sequence stopped.
type FinishReason string

// Finish reasons, as the OpenAI API names them.
const (
	FinishStop   FinishReason = "stop"
	FinishLength FinishReason = "length"
	FinishAbort  FinishReason = "abort"
)

// Request is one sequence to run. The caller fills it and hands it to
// Engine.Submit; the engine owns it afterwards.
type Request struct {
	ID     string
	Prompt []int
	// Output is the planned output; the engine emits len(Output) tokens.
	Output []int
	// Finish is reported when all of Output has been emitted.
	Finish FinishReason
	// LoRA is the adapter name, empty for the base model.
	LoRA string
	// MaxTokens is the client's max_tokens, for metrics only.
	MaxTokens int
	// RemotePrefill marks a decode-side request whose prompt KV arrived
	// from a prefill engine: the prompt is not recomputed (but for its last
	// token, as vLLM does). The received blocks enter the prefix cache.
	RemotePrefill bool
	// ExternalTokens is the number of leading prompt tokens whose KV is
	// loaded from outside the engine (a shared KV store such as LMCache)
	// instead of being computed; the rest of the prompt is prefilled. The
	// loaded blocks enter the prefix cache. Tokens the local prefix cache
	// already holds are taken from it.
	ExternalTokens int
	// ReadyAfter keeps the request waiting for this much simulated time
	// after arrival before it can be scheduled: a decode engine receiving
	// the KV cache of its prompt. It counts as waiting meanwhile, and the
	// wait is part of its queue time and TTFT, as in vLLM.
	ReadyAfter time.Duration
	// HoldBlocks keeps the KV blocks after the last token until
	// ReleaseHeld is called (a prefill engine waiting for the decode side
	// to pull the KV).
	HoldBlocks bool

	stream *Stream
	// scheduler state, guarded by the engine lock
	state     seqState
	cancelled atomic.Bool
}

// Stream is the consumer side of a submitted request.
type Stream struct {
	notify chan struct{}

	mu       sync.Mutex
	progress Progress
}

// Progress is a snapshot of a request.
type Progress struct {
	Generated    int // tokens emitted so far
	Done         bool
	Finish       FinishReason
	CachedTokens int // prompt tokens served from the prefix cache
	// Simulated timestamps, seconds since the engine started.
	Arrival, FirstScheduled, FirstToken, Finished float64
	// HeldBlocks are the KV block IDs kept for a remote decode.
	HeldBlocks []int
	Err        error
}

func newStream() *Stream { return &Stream{notify: make(chan struct{}, 1)} }

// Next blocks until there is progress beyond generated tokens, the request
// finishes, or ctx ends (then ok is false).
func (s *Stream) Next(ctx context.Context, generated int) (p Progress, ok bool) {
	for {
		s.mu.Lock()
		p = s.progress
		s.mu.Unlock()
		if p.Generated > generated || p.Done {
			return p, true
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return p, false
		}
	}
}

// Wait blocks until the request is done or ctx ends.
func (s *Stream) Wait(ctx context.Context) (Progress, bool) {
	for {
		p, ok := s.Next(ctx, 1<<31-1)
		if !ok || p.Done {
			return p, ok
		}
	}
}

func (s *Stream) update(f func(p *Progress)) {
	s.mu.Lock()
	f(&s.progress)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
