// Package sim is the engine simulator: vLLM- and SGLang-compatible engines
// with a calibrated performance model, served over HTTP, one or many per
// process.
package sim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kthena/kthena/internal/sim/perfmodel"
)

// Flavor is the engine being imitated.
type Flavor string

// Engine flavours.
const (
	VLLM   Flavor = "vllm"
	SGLang Flavor = "sglang"
)

// Mode chooses the generated text.
type Mode string

// Output modes, as llm-d-inference-sim names them.
const (
	ModeEcho   Mode = "echo"   // repeat the last user message
	ModeRandom Mode = "random" // sentences from a built-in corpus
)

// KVRole is the engine's part in prefill/decode disaggregation.
type KVRole string

// KV roles.
const (
	RoleBoth    KVRole = "both"
	RolePrefill KVRole = "prefill"
	RoleDecode  KVRole = "decode"
)

// KV connectors: how KV computed elsewhere reaches this engine.
const (
	// ConnectorNixl is vLLM's NixlConnector handshake: kv_transfer_params
	// with do_remote_decode / do_remote_prefill, the decode engine pulling
	// the prefill engine's KV (the router's nixl and mooncake connectors).
	ConnectorNixl = "nixl"
	// ConnectorLMCache shares KV through an LMCache store: prefill
	// engines store the KV of the prompts they compute, decode engines
	// load what the store has before prefilling the rest (the router's
	// lmcache connector; plain requests on both sides).
	ConnectorLMCache = "lmcache"
	// ConnectorNone has no KV transfer: a decode engine given a plain
	// request recomputes the prompt (the router's http connector).
	ConnectorNone = "none"
)

// What a decode engine does when a prefill's KV cannot be pulled.
const (
	KVLoadRecompute = "recompute"
	KVLoadFail      = "fail"
)

// DefaultLMCacheChunkSize is LMCache's default chunk_size in tokens.
const DefaultLMCacheChunkSize = 256

// Failure kinds for injection, as llm-d-inference-sim names them.
const (
	FailureRateLimit     = "rate_limit"
	FailureInvalidAPIKey = "invalid_api_key"
	FailureContextLength = "context_length"
	FailureServerError   = "server_error"
	FailureInvalidReq    = "invalid_request"
	FailureModelNotFound = "model_not_found"
)

var allFailures = []string{FailureRateLimit, FailureInvalidAPIKey, FailureContextLength,
	FailureServerError, FailureInvalidReq, FailureModelNotFound}

// LoRAModule is an adapter loaded at startup.
type LoRAModule struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// Config is everything one simulated engine needs. Zero values mean "the
// default"; call WithDefaults then Validate (New does both).
type Config struct {
	Engine           Flavor
	Model            string
	ServedModelNames []string
	Host             string
	Port             int
	// AdvertiseHost is the address peers use to reach this engine (PD
	// handshakes); defaults to Host, or 127.0.0.1 when Host is a wildcard.
	AdvertiseHost string

	// TokenizerDir holds the served model's Hugging Face tokenizer files
	// (tokenizer.json, tokenizer_config.json): /tokenize, token counts and
	// KV events then use the model's own tokenizer and chat template.
	// Empty: the built-in cl100k_base encoding with a Llama-3 template.
	TokenizerDir string

	Profile   string
	TimeScale float64
	Mode      Mode
	Seed      int64

	// TimeToFirstToken and InterTokenLatency override the roofline when
	// positive (llm-d-inference-sim semantics).
	TimeToFirstToken  time.Duration
	InterTokenLatency time.Duration

	MaxNumSeqs           int
	MaxModelLen          int
	MaxNumBatchedTokens  int
	EnablePrefixCaching  *bool
	KVCacheSize          int // blocks; 0 derives it from the profile's memory
	BlockSize            int
	GPUMemoryUtilization float64
	HashSeed             string

	MaxLoRAs        int
	MaxCPULoRAs     int
	LoRAModules     []LoRAModule
	LoRALoadLatency time.Duration

	KVRole            KVRole
	KVTransferTimeout time.Duration
	// KVLoadFailurePolicy is what a decode engine does when the prompt's KV
	// cannot be pulled (the prefill pod died, or the hold expired):
	// recompute the prompt locally, or fail the request with a 500 so the
	// router tries another pair. vLLM's kv_load_failure_policy.
	KVLoadFailurePolicy string
	BootstrapPort       int // SGLang prefill bootstrap listener; 0 serves it on Port only
	// KVConnector is nixl, lmcache or none; empty means nixl for a vLLM
	// engine in a prefill or decode role and none otherwise.
	KVConnector string
	// LMCacheURL is the base URL of the engine (or `kthena-sim
	// lmcache-server`) that serves the shared LMCache store; empty uses this
	// engine's own store.
	LMCacheURL string
	// LMCacheChunkSize is the store's granularity in tokens (a multiple of
	// the block size); default 256 as LMCache.
	LMCacheChunkSize int

	KVEventsEndpoint  string
	KVEventsTopic     string
	KVEventsIntHashes bool
	KVEventsKeyed     bool

	StartupDelay         time.Duration
	FailureInjectionRate float64 // percent, 0-100
	FailureTypes         []string
	CrashAfter           int

	ShutdownGrace time.Duration
}

// DefaultModel is served when no model is named.
const DefaultModel = "meta-llama/Llama-3.1-8B-Instruct"

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Engine == "" {
		c.Engine = VLLM
	}
	if c.Profile == "" {
		c.Profile = perfmodel.DefaultProfile
	}
	prof, err := perfmodel.Builtin().Lookup(c.Profile)
	if c.Model == "" {
		c.Model = DefaultModel
		if err == nil {
			c.Model = prof.Model.Name
		}
	}
	if len(c.ServedModelNames) == 0 {
		c.ServedModelNames = []string{c.Model}
	}
	if c.Port == 0 {
		c.Port = map[Flavor]int{VLLM: 8000, SGLang: 30000}[c.Engine]
	}
	if c.Host == "" {
		c.Host = "0.0.0.0"
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	if c.Mode == "" {
		c.Mode = ModeRandom
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if err == nil {
		if c.MaxNumSeqs == 0 {
			c.MaxNumSeqs = prof.MaxNumSeqs
		}
		if c.MaxModelLen == 0 {
			c.MaxModelLen = prof.MaxModelLen
		}
		if c.MaxNumBatchedTokens == 0 {
			c.MaxNumBatchedTokens = max(prof.MaxNumBatchedTokens, 1)
		}
		if c.GPUMemoryUtilization == 0 {
			c.GPUMemoryUtilization = prof.GPUMemoryUtilization
		}
	}
	if c.EnablePrefixCaching == nil {
		on := true
		c.EnablePrefixCaching = &on
	}
	if c.BlockSize == 0 {
		c.BlockSize = 16
	}
	if c.MaxLoRAs == 0 {
		c.MaxLoRAs = 1
	}
	if c.LoRALoadLatency == 0 {
		c.LoRALoadLatency = 200 * time.Millisecond
	}
	if c.KVRole == "" {
		c.KVRole = RoleBoth
	}
	if c.KVConnector == "" {
		c.KVConnector = ConnectorNone
		if c.Engine == VLLM && c.KVRole != RoleBoth {
			c.KVConnector = ConnectorNixl
		}
	}
	if c.KVConnector == ConnectorLMCache && c.LMCacheChunkSize == 0 {
		c.LMCacheChunkSize = DefaultLMCacheChunkSize
	}
	if c.KVTransferTimeout == 0 {
		c.KVTransferTimeout = 30 * time.Second
	}
	if c.KVLoadFailurePolicy == "" {
		c.KVLoadFailurePolicy = KVLoadRecompute
	}
	if c.KVEventsTopic == "" && c.KVEventsEndpoint != "" && c.Engine == VLLM {
		c.KVEventsTopic = "kv-events"
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.Engine != VLLM && c.Engine != SGLang {
		errs = append(errs, fmt.Errorf("engine must be vllm or sglang, got %q", c.Engine))
	}
	if _, err := perfmodel.Builtin().Lookup(c.Profile); err != nil {
		errs = append(errs, err)
	}
	if c.Mode != ModeEcho && c.Mode != ModeRandom {
		errs = append(errs, fmt.Errorf("mode must be echo or random, got %q", c.Mode))
	}
	if c.KVRole != RoleBoth && c.KVRole != RolePrefill && c.KVRole != RoleDecode {
		errs = append(errs, fmt.Errorf("kv-role must be prefill, decode or both, got %q", c.KVRole))
	}
	if c.KVConnector != ConnectorNixl && c.KVConnector != ConnectorLMCache && c.KVConnector != ConnectorNone {
		errs = append(errs, fmt.Errorf("kv-connector must be nixl, lmcache or none, got %q", c.KVConnector))
	}
	if c.KVLoadFailurePolicy != KVLoadRecompute && c.KVLoadFailurePolicy != KVLoadFail {
		errs = append(errs, fmt.Errorf("kv-load-failure-policy must be recompute or fail, got %q", c.KVLoadFailurePolicy))
	}
	if c.KVConnector == ConnectorLMCache && c.BlockSize > 0 && (c.LMCacheChunkSize <= 0 || c.LMCacheChunkSize%c.BlockSize != 0) {
		errs = append(errs, fmt.Errorf("lmcache-chunk-size must be a positive multiple of block-size %d, got %d", c.BlockSize, c.LMCacheChunkSize))
	}
	if c.TimeScale <= 0 {
		errs = append(errs, errors.New("time-scale must be positive"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d out of range", c.Port))
	}
	for name, v := range map[string]int{"max-num-seqs": c.MaxNumSeqs, "max-model-len": c.MaxModelLen,
		"max-num-batched-tokens": c.MaxNumBatchedTokens, "block-size": c.BlockSize, "max-loras": c.MaxLoRAs} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	if c.BlockSize > 0 && (c.BlockSize < 8 || c.BlockSize > 128) {
		errs = append(errs, fmt.Errorf("block-size must be in [8,128], got %d", c.BlockSize))
	}
	if c.KVCacheSize < 0 {
		errs = append(errs, errors.New("kv-cache-size must not be negative"))
	}
	if c.FailureInjectionRate < 0 || c.FailureInjectionRate > 100 {
		errs = append(errs, fmt.Errorf("failure-injection-rate must be in [0,100], got %v", c.FailureInjectionRate))
	}
	for _, f := range c.FailureTypes {
		if !slices.Contains(allFailures, f) {
			errs = append(errs, fmt.Errorf("unknown failure type %q (known: %v)", f, allFailures))
		}
	}
	if c.CrashAfter < 0 {
		errs = append(errs, errors.New("crash-after must not be negative"))
	}
	if c.TimeToFirstToken < 0 || c.InterTokenLatency < 0 || c.StartupDelay < 0 {
		errs = append(errs, errors.New("latencies must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) prefixCaching() bool { return c.EnablePrefixCaching == nil || *c.EnablePrefixCaching }
