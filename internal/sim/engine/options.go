package engine

import (
	"errors"
	"time"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/sim/perfmodel"
)

// Options configure an Engine.
type Options struct {
	Profile             *perfmodel.Profile
	NumBlocks           int
	BlockSize           int
	MaxNumSeqs          int
	MaxNumBatchedTokens int
	PrefixCaching       bool
	MaxLoRAs            int
	// TimeScale multiplies every simulated duration into wall time; 0.01
	// runs a hundred times faster than real time.
	TimeScale float64
	// Virtual decouples the engine from the wall clock: simulated time
	// advances only with steps, and steps run back to back without
	// waiting. For offline measurement (the fidelity bench), not serving.
	Virtual bool
	// FixedTTFT and FixedITL, when positive, replace the roofline: a
	// prompt is prefilled in one step of FixedTTFT, a decode step takes
	// FixedITL.
	FixedTTFT time.Duration
	FixedITL  time.Duration
	Hasher    kvcache.Hasher
	// ExternalCache says a KV connector can supply prompt KV (remote
	// prefill or a shared store): every new request is then counted as an
	// external prefix cache query, as vLLM does when a connector is set.
	ExternalCache bool
	// Events receives KV cache events after each step; nil disables them.
	Events func(kvevents.Batch)
	// Observer receives metrics; nil discards them.
	Observer Observer
	Logger   logr.Logger
}

func (o *Options) validate() error {
	switch {
	case o.Profile == nil:
		return errors.New("engine: profile is required")
	case o.NumBlocks <= 0 || o.BlockSize <= 0:
		return errors.New("engine: KV cache needs blocks")
	case o.MaxNumSeqs <= 0 || o.MaxNumBatchedTokens <= 0:
		return errors.New("engine: max-num-seqs and the token budget must be positive")
	case o.TimeScale <= 0 && !o.Virtual:
		return errors.New("engine: time scale must be positive")
	}
	return nil
}

// Observer receives what the engine measures, in simulated seconds.
// Implementations must be cheap: they run on the scheduler goroutine.
type Observer interface {
	// Step reports the state after each step.
	Step(StepStats)
	// FirstToken reports a request's first token, with its TTFT.
	FirstToken(ttft float64)
	// Token reports one output token after the first, with its gap.
	Token(itl float64)
	// Finished reports a finished request.
	Finished(RequestStats)
}

// StepStats is the engine state after a step.
type StepStats struct {
	Running, Waiting int
	KVUsage          float64
	UsedBlocks       int
	PromptTokens     int // prompt tokens computed this step
	GenerationTokens int // output tokens emitted this step
	PrefixQueries    int // prompt tokens looked up in the cache this step
	PrefixHits       int // of which were cached
	// ExternalQueries and ExternalHits are the prompt tokens looked up
	// through the KV connector and those it supplied (beyond local hits).
	ExternalQueries, ExternalHits int
	// WaitingForKV counts waiting requests whose KV is still arriving.
	WaitingForKV int
	// HeldRequests and HeldBlocks are finished prefills whose KV blocks
	// are kept for a decode engine to pull.
	HeldRequests, HeldBlocks int
	Preemptions              int
	RunningLoRAs             []string
	WaitingLoRAs             []string
	StepDuration             float64
	// StateOnly marks a report of state changed outside a step (KV held
	// for a remote decode released): only the gauges are meaningful.
	StateOnly         bool
	ScheduledRequests []RequestStats // requests first scheduled this step (queue time known)
}

// RequestStats are one request's timings, in simulated seconds.
type RequestStats struct {
	LoRA             string
	PromptTokens     int
	GenerationTokens int
	CachedTokens     int
	MaxTokens        int
	Finish           FinishReason
	QueueTime        float64
	TTFT             float64
	PrefillTime      float64
	DecodeTime       float64
	E2E              float64
}

type nopObserver struct{}

func (nopObserver) Step(StepStats)        {}
func (nopObserver) Token(float64)         {}
func (nopObserver) FirstToken(float64)    {}
func (nopObserver) Finished(RequestStats) {}
