package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/sim/perfmodel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recorder struct {
	mu       sync.Mutex
	finished []RequestStats
	maxWait  int
	maxRun   int
	preempt  int
}

func (r *recorder) Step(s StepStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxWait = max(r.maxWait, s.Waiting)
	r.maxRun = max(r.maxRun, s.Running)
	r.preempt += s.Preemptions
}
func (r *recorder) Token(float64)      {}
func (r *recorder) FirstToken(float64) {}
func (r *recorder) Finished(s RequestStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, s)
}

func newTestEngine(t *testing.T, mutate func(*Options)) (*Engine, *recorder) {
	t.Helper()
	prof, err := perfmodel.Builtin().Lookup(perfmodel.DefaultProfile)
	require.NoError(t, err)
	rec := &recorder{}
	o := Options{Profile: &prof, NumBlocks: 4096, BlockSize: 16, MaxNumSeqs: 64, MaxNumBatchedTokens: 8192,
		PrefixCaching: true, MaxLoRAs: 1, TimeScale: 0.01, Hasher: kvcache.NewHasher(""), Observer: rec}
	if mutate != nil {
		mutate(&o)
	}
	e, err := New(o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go e.Run(ctx)
	return e, rec
}

func tokens(n, base int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = base + i%50000
	}
	return out
}

func run(t *testing.T, e *Engine, r *Request) Progress {
	t.Helper()
	s, err := e.Submit(r)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, ok := s.Wait(ctx)
	require.True(t, ok, "request finished before the deadline")
	return p
}

func TestTTFTIsModelledPrefillAndPrefixHitCutsIt(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	prompt := tokens(4000, 1000)
	cold := run(t, e, &Request{ID: "a", Prompt: prompt, Output: tokens(4, 7), Finish: FinishLength})
	prof := e.o.Profile
	want := prof.PrefillTime(0, 4000, 8192).Seconds()
	assert.InDelta(t, want, cold.FirstToken-cold.Arrival, 1e-9, "TTFT on an idle engine is the modelled prefill")
	assert.Zero(t, cold.CachedTokens)

	// Same prefix, different tail: all full blocks of the shared part hit.
	prompt2 := append(append([]int{}, prompt[:3900]...), tokens(100, 60000)...)
	assert.Equal(t, 3888, e.CachedPrefixTokens(prompt2, ""))
	assert.Zero(t, e.CachedPrefixTokens(prompt2, "some-lora"), "adapter name is part of the hash")
	warm := run(t, e, &Request{ID: "b", Prompt: prompt2, Output: tokens(4, 7), Finish: FinishLength})
	assert.Equal(t, 3888, warm.CachedTokens, "243 whole blocks of 16")
	wantWarm := prof.PrefillTime(3888, 4000-3888, 8192).Seconds()
	assert.InDelta(t, wantWarm, warm.FirstToken-warm.Arrival, 1e-9)
	assert.Less(t, wantWarm, want/5)
	assert.Equal(t, 3984, e.CachedPrefixTokens(prompt2, ""), "the warm request cached its own tail")
}

func TestQueueBuildsBeyondMaxNumSeqs(t *testing.T) {
	e, rec := newTestEngine(t, func(o *Options) { o.MaxNumSeqs = 4 })
	var streams []*Stream
	for i := 0; i < 12; i++ {
		s, err := e.Submit(&Request{ID: "r", Prompt: tokens(100, i*1000), Output: tokens(500, 5), Finish: FinishLength})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range streams {
		p, ok := s.Wait(ctx)
		require.True(t, ok)
		assert.Equal(t, 500, p.Generated)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Equal(t, 4, rec.maxRun)
	assert.GreaterOrEqual(t, rec.maxWait, 7)
	require.Len(t, rec.finished, 12)
	var queued int
	for _, f := range rec.finished {
		if f.QueueTime > 0 {
			queued++
		}
	}
	assert.GreaterOrEqual(t, queued, 8, "requests beyond the batch waited")
}

func TestPreemptionWhenBlocksRunOut(t *testing.T) {
	e, rec := newTestEngine(t, func(o *Options) { o.NumBlocks = 40; o.BlockSize = 16 })
	var streams []*Stream
	for i := 0; i < 4; i++ {
		// Each needs 64 prompt + 200 output = 17 blocks; 4 of them need 68 > 40.
		s, err := e.Submit(&Request{ID: "p", Prompt: tokens(64, i*500), Output: tokens(200, 9), Finish: FinishLength})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range streams {
		p, ok := s.Wait(ctx)
		require.True(t, ok)
		assert.Equal(t, 200, p.Generated)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	assert.Positive(t, rec.preempt)
	assert.Zero(t, e.Stats().UsedBlocks, "all blocks returned")
	_, err := e.Submit(&Request{Prompt: tokens(700, 1), Output: tokens(1, 1)})
	assert.ErrorIs(t, err, ErrTooLarge)
}

func TestEventsAndFixedLatency(t *testing.T) {
	var mu sync.Mutex
	var stored int
	e, _ := newTestEngine(t, func(o *Options) {
		o.FixedTTFT = 200 * time.Millisecond
		o.FixedITL = 20 * time.Millisecond
		o.Events = func(b kvevents.Batch) {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range b.Events {
				if s, ok := ev.(kvevents.BlockStored); ok {
					stored += len(s.BlockHashes)
				}
			}
		}
	})
	p := run(t, e, &Request{ID: "f", Prompt: tokens(64, 3), Output: tokens(11, 3), Finish: FinishStop})
	assert.InDelta(t, 0.2, p.FirstToken-p.Arrival, 1e-9)
	assert.InDelta(t, 0.2+10*0.02, p.Finished-p.Arrival, 1e-9)
	assert.Equal(t, FinishStop, p.Finish)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 4, stored, "64 prompt tokens plus 10 computed output tokens fill 4 blocks")
}

func TestCancelFreesBlocks(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	r := &Request{ID: "c", Prompt: tokens(100, 1), Output: tokens(10000, 1), Finish: FinishLength}
	s, err := e.Submit(r)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, ok := s.Next(ctx, 3)
	require.True(t, ok)
	e.Cancel(r)
	p, ok := s.Wait(ctx)
	require.True(t, ok)
	assert.Equal(t, FinishAbort, p.Finish)
	assert.Eventually(t, func() bool { return e.Stats().UsedBlocks == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestMaxLoRAsLimitsAdaptersPerBatch(t *testing.T) {
	var mu sync.Mutex
	var maxRunning int
	var sawWaitingLoRA bool
	obs := &loraObserver{step: func(s StepStats) {
		mu.Lock()
		defer mu.Unlock()
		maxRunning = max(maxRunning, len(s.RunningLoRAs))
		sawWaitingLoRA = sawWaitingLoRA || len(s.WaitingLoRAs) > 0
	}}
	e, _ := newTestEngine(t, func(o *Options) { o.MaxLoRAs = 2; o.Observer = obs })
	var streams []*Stream
	for i, lora := range []string{"a", "b", "c", "a", "b", "c"} {
		s, err := e.Submit(&Request{Prompt: tokens(40, i*100), Output: tokens(300, 1), Finish: FinishLength, LoRA: lora})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range streams {
		p, ok := s.Wait(ctx)
		require.True(t, ok)
		assert.Equal(t, 300, p.Generated)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, maxRunning, "never more than max-loras adapters in a batch")
	assert.True(t, sawWaitingLoRA, "the third adapter waited for a slot")
}

type loraObserver struct{ step func(StepStats) }

func (o *loraObserver) Step(s StepStats)      { o.step(s) }
func (o *loraObserver) Token(float64)         {}
func (o *loraObserver) FirstToken(float64)    {}
func (o *loraObserver) Finished(RequestStats) {}

func TestSubmitAfterStopFails(t *testing.T) {
	prof, err := perfmodel.Builtin().Lookup(perfmodel.DefaultProfile)
	require.NoError(t, err)
	e, err := New(Options{Profile: &prof, NumBlocks: 512, BlockSize: 16, MaxNumSeqs: 4, MaxNumBatchedTokens: 512,
		TimeScale: 0.01, Hasher: kvcache.NewHasher("")})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	s, err := e.Submit(&Request{Prompt: tokens(10, 1), Output: tokens(5000, 1), Finish: FinishLength})
	require.NoError(t, err)
	cancel()
	<-done
	p, ok := s.Wait(context.Background())
	require.True(t, ok)
	assert.ErrorIs(t, p.Err, ErrStopped, "in-flight requests are aborted")
	_, err = e.Submit(&Request{Prompt: tokens(10, 1), Output: tokens(5, 1)})
	assert.ErrorIs(t, err, ErrStopped)
}

func TestReadyAfterWaitsAsQueuedTime(t *testing.T) {
	var mu sync.Mutex
	maxWaiting := 0
	obs := &loraObserver{step: func(s StepStats) {
		mu.Lock()
		defer mu.Unlock()
		maxWaiting = max(maxWaiting, s.Waiting)
	}}
	e, _ := newTestEngine(t, func(o *Options) { o.Observer = obs })
	// A long request keeps the engine busy while the second one's KV
	// "arrives" for 500 ms of simulated time.
	busy, err := e.Submit(&Request{Prompt: tokens(64, 1), Output: tokens(400, 2), Finish: FinishLength})
	require.NoError(t, err)
	p := run(t, e, &Request{Prompt: tokens(64, 900), Output: tokens(3, 3), Finish: FinishLength,
		RemotePrefill: true, ReadyAfter: 500 * time.Millisecond})
	assert.GreaterOrEqual(t, p.FirstScheduled-p.Arrival, 0.5, "not scheduled before its KV arrived")
	assert.Less(t, p.FirstScheduled-p.Arrival, 0.52, "scheduled at the first step after")
	mu.Lock()
	assert.Positive(t, maxWaiting, "counted as waiting meanwhile")
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, ok := busy.Wait(ctx)
	require.True(t, ok)

	// On an idle engine the scheduler sleeps until the KV is ready.
	idle := run(t, e, &Request{Prompt: tokens(64, 5000), Output: tokens(2, 3), Finish: FinishLength,
		RemotePrefill: true, ReadyAfter: 300 * time.Millisecond})
	assert.InDelta(t, 0.3, idle.FirstScheduled-idle.Arrival, 1e-9)
}
