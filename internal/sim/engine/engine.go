package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
)

// seqState is the scheduler's view of one request.
type seqState struct {
	table         kvcache.Table
	extra         []string
	computed      int // tokens whose KV exists
	generated     int
	cached        int
	scheduledOnce bool
	readyAt       float64
	arrival       float64
	firstSched    float64
	firstToken    float64
	lastToken     float64
}

func (s *seqState) numTokens(r *Request) int { return len(r.Prompt) + s.generated }

func tokenAt(r *Request) func(int) int {
	return func(i int) int {
		if i < len(r.Prompt) {
			return r.Prompt[i]
		}
		return r.Output[i-len(r.Prompt)]
	}
}

// Engine is one simulated engine instance.
type Engine struct {
	o     Options
	cache *kvcache.Manager
	obs   Observer
	wake  chan struct{}
	start time.Time

	mu        sync.Mutex
	waiting   []*Request
	running   []*Request
	held      map[string]*Request
	clock     float64 // simulated seconds at the end of the last step
	busy      bool
	stepStart float64
	stepEnd   float64
	totals    Totals
	stopped   bool
}

// Totals are cumulative counters.
type Totals struct {
	Steps            int64 `json:"steps"`
	Preemptions      int64 `json:"preemptions"`
	FinishedRequests int64 `json:"finishedRequests"`
	PromptTokens     int64 `json:"promptTokens"`
	GenerationTokens int64 `json:"generationTokens"`
	PrefixQueries    int64 `json:"prefixQueries"`
	PrefixHits       int64 `json:"prefixHits"`
	// ExternalHits are prompt tokens whose KV came through a connector
	// (remote prefill or a shared store) rather than the local cache.
	ExternalHits int64 `json:"externalHits"`
}

// New builds an engine; call Run to start its scheduler.
func New(o Options) (*Engine, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	obs := o.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Engine{
		o: o,
		cache: kvcache.NewManager(kvcache.Options{NumBlocks: o.NumBlocks, BlockSize: o.BlockSize,
			PrefixCaching: o.PrefixCaching, Hasher: o.Hasher, EmitEvents: o.Events != nil}),
		obs:   obs,
		wake:  make(chan struct{}, 1),
		start: time.Now(),
		held:  map[string]*Request{},
	}, nil
}

// ErrStopped rejects requests submitted after the engine stopped.
var ErrStopped = errors.New("engine stopped")

// ErrTooLarge rejects a request that can never fit in the KV cache.
var ErrTooLarge = errors.New("request needs more KV blocks than the cache holds")

// Submit queues a request and returns its stream.
func (e *Engine) Submit(r *Request) (*Stream, error) {
	if len(r.Output) == 0 {
		return nil, errors.New("request must generate at least one token")
	}
	total := len(r.Prompt) + len(r.Output)
	if (total+e.o.BlockSize-1)/e.o.BlockSize > e.o.NumBlocks {
		return nil, fmt.Errorf("%w: %d tokens, capacity %d", ErrTooLarge, total, e.o.NumBlocks*e.o.BlockSize)
	}
	if r.LoRA != "" {
		r.state.extra = []string{r.LoRA}
	}
	// Hash the prompt outside the lock: it is the costly part of matching.
	if e.o.PrefixCaching {
		r.state.table.Hashes = e.cache.Hasher().Chain(r.Prompt, e.o.BlockSize, r.state.extra)
	}
	r.stream = newStream()

	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return nil, ErrStopped
	}
	now := e.simNow()
	if e.busy {
		now = min(max(now, e.stepStart), e.stepEnd)
	} else {
		now = max(now, e.clock)
	}
	r.state.arrival = now
	r.state.readyAt = now + r.ReadyAfter.Seconds()
	r.stream.progress.Arrival = r.state.arrival
	e.waiting = append(e.waiting, r)
	e.mu.Unlock()
	e.signal()
	return r.stream, nil
}

// Cancel aborts a request; its blocks are freed at the next step.
func (e *Engine) Cancel(r *Request) {
	r.cancelled.Store(true)
	e.signal()
}

// ReleaseHeld frees the blocks a finished HoldBlocks request kept (they
// stay in the prefix cache until evicted). Requests waiting for blocks are
// admitted at the next step.
func (e *Engine) ReleaseHeld(id string) bool {
	e.mu.Lock()
	r, ok := e.held[id]
	if !ok {
		e.mu.Unlock()
		return false
	}
	delete(e.held, id)
	e.cache.Release(&r.state.table)
	st := e.stateStats()
	st.StateOnly = true
	e.mu.Unlock()
	e.obs.Step(st)
	e.signal()
	return true
}

// stateStats fills the state part of StepStats; call with the lock held.
func (e *Engine) stateStats() StepStats {
	st := StepStats{Running: len(e.running), Waiting: len(e.waiting)}
	st.KVUsage, st.UsedBlocks = e.cache.Usage(), e.cache.NumBlocks()-e.cache.NumFree()
	st.RunningLoRAs, st.WaitingLoRAs = loraNames(e.running), loraNames(e.waiting)
	for _, r := range e.waiting {
		if r.state.readyAt > e.clock {
			st.WaitingForKV++
		}
	}
	st.HeldRequests = len(e.held)
	for _, r := range e.held {
		st.HeldBlocks += len(r.state.table.Blocks)
	}
	return st
}

// ResetPrefixCache drops all cached blocks when nothing runs.
func (e *Engine) ResetPrefixCache() bool {
	e.mu.Lock()
	ok := e.cache.Reset()
	evs := e.cache.TakeEvents()
	e.mu.Unlock()
	e.publish(evs)
	return ok
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// simNow maps wall time to simulated seconds.
func (e *Engine) simNow() float64 {
	if e.o.Virtual {
		return e.clock
	}
	return time.Since(e.start).Seconds() / e.o.TimeScale
}

func (e *Engine) wallAt(sim float64) time.Time {
	return e.start.Add(time.Duration(sim * e.o.TimeScale * float64(time.Second)))
}

// Now is the engine's simulated time in seconds.
func (e *Engine) Now() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return max(e.clock, e.simNow())
}

// Sleep waits for a simulated duration, scaled to wall time.
func (e *Engine) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 || e.o.Virtual {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(float64(d) * e.o.TimeScale))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run drives the scheduler until ctx ends; in-flight requests are then
// aborted.
func (e *Engine) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer e.abortAll()
	for {
		e.mu.Lock()
		if len(e.running) == 0 && len(e.waiting) == 0 {
			e.busy = false
			e.mu.Unlock()
			select {
			case <-e.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if !e.busy {
			// Waking from idle: the step starts when the last request that
			// woke us arrived, not when the goroutine got scheduled.
			for _, r := range e.waiting {
				e.clock = max(e.clock, r.state.arrival)
			}
			e.busy = true
		}
		p := e.schedule()
		if len(p.items) == 0 && len(p.failed) == 0 && p.preempted == 0 {
			// Only requests still receiving their KV, or waiting for blocks
			// held for remote decodes: sleep until the first KV is ready,
			// or until something arrives or is released.
			if !e.waitUntil(ctx, timer, p.nextReady) {
				return
			}
			continue
		}
		dur := e.stepDuration(p)
		e.stepStart, e.stepEnd = e.clock, e.clock+dur.Seconds()
		end := e.stepEnd
		e.mu.Unlock()

		if d := time.Until(e.wallAt(end)); d > 0 && !e.o.Virtual {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
		}

		e.mu.Lock()
		stats := e.complete(p, end, dur.Seconds())
		evs := e.cache.TakeEvents()
		e.mu.Unlock()
		e.obs.Step(stats)
		e.publish(evs)
	}
}

// waitUntil releases the lock held by Run and sleeps until simulated time
// t (then advances the clock to it), a new arrival or a release of held
// blocks; t <= the clock waits for the latter only. It reports false when
// ctx ends.
func (e *Engine) waitUntil(ctx context.Context, timer *time.Timer, t float64) bool {
	e.busy = false
	timed := t > e.clock
	// Report the state the engine waits in (requests queued for their KV
	// or for held blocks): no step will until something changes.
	st := e.stateStats()
	st.StateOnly = true
	e.mu.Unlock()
	e.obs.Step(st)
	if !timed {
		select {
		case <-e.wake:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !e.o.Virtual {
		timer.Reset(max(time.Until(e.wallAt(t)), 0))
		select {
		case <-timer.C:
		case <-e.wake:
			timer.Stop() // Go 1.23+ timers never deliver a stale tick after Stop
			return true
		case <-ctx.Done():
			timer.Stop()
			return false
		}
	}
	e.mu.Lock()
	e.clock = max(e.clock, t)
	e.mu.Unlock()
	return true
}

func (e *Engine) publish(evs []kvevents.Event) {
	if len(evs) == 0 || e.o.Events == nil {
		return
	}
	e.o.Events(kvevents.Batch{TS: float64(time.Now().UnixNano()) / 1e9, Events: evs})
}

func (e *Engine) abortAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stopped = true
	for _, r := range append(e.running, e.waiting...) {
		e.cache.Release(&r.state.table)
		r.stream.update(func(p *Progress) {
			p.Done, p.Finish, p.Err = true, FinishAbort, ErrStopped
		})
	}
	e.running, e.waiting = nil, nil
}
