// Package framework holds the contracts of the router's scheduler: the
// plugin kinds (Filter, Scorer, Picker, PreRequest), the read-only views of a
// request and of an endpoint that plugins see, and the result a scheduling
// run returns. It imports nothing else from the router so that plugins build
// against contracts, not internals.
package framework

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/go-logr/logr"
)

// Plugin is the base of every scheduler extension.
type Plugin interface {
	// Type is the registered plugin type, such as "least-request".
	Type() string
}

// Filter removes endpoints that must not serve a request. It returns the
// kept endpoints (it may reuse the backing array of in).
type Filter interface {
	Plugin
	Filter(ctx context.Context, req *Request, in []*Endpoint) []*Endpoint
}

// Scorer rates every endpoint in [0,1]; 1 is best. out has len(eps) and is
// zeroed by the framework; values outside [0,1] are clamped.
type Scorer interface {
	Plugin
	Score(ctx context.Context, req *Request, eps []*Endpoint, out []float64)
}

// Picker orders scored candidates, best first; the director tries them in
// that order (failover). It may sort in place and return a prefix.
type Picker interface {
	Plugin
	Pick(ctx context.Context, req *Request, cands []Candidate) []Candidate
}

// PreRequest is told which endpoint a request is about to be sent to (for
// example so that a prefix index learns that the endpoint now caches the
// prompt). It runs once per attempt, before the request is sent.
type PreRequest interface {
	Plugin
	PreRequest(ctx context.Context, req *Request, ep *Endpoint)
}

// PrefixEstimator estimates how much of a prompt an endpoint holds in its
// KV cache; the PD decider uses it to skip remote prefill when little of
// the prompt is left to compute.
type PrefixEstimator interface {
	Plugin
	// CachedPromptBytes is how many leading bytes of req.Prompt ep is
	// believed to cache.
	CachedPromptBytes(ctx context.Context, req *Request, ep *Endpoint) int
}

// CachedTokensCounter reports how many of a request's prompt tokens an
// endpoint caches, as the engine itself reported them; ok is false when it
// does not know the endpoint's cache. The PD decider prefers it to a
// PrefixEstimator.
type CachedTokensCounter interface {
	Plugin
	CachedPromptTokens(ctx context.Context, req *Request, ep *Endpoint) (cached, total int, ok bool)
}

// EndpointObserver is told when an endpoint leaves, so per-endpoint state can
// be dropped at once.
type EndpointObserver interface {
	Plugin
	EndpointRemoved(key string)
}

// EndpointWatcher is shown every endpoint whenever the set may have
// changed (and once when the plugin is built), so it can start per-endpoint
// work, such as a KV-event subscription, before the endpoint's first
// request.
type EndpointWatcher interface {
	Plugin
	EndpointsChanged(eps []*Endpoint)
}

// Factory builds a plugin instance from its arguments. args is a strict
// decoder (unknown fields fail) over the JSON form of the plugin's args; it
// is nil when no args are configured.
type Factory func(args *json.Decoder, h Handle) (Plugin, error)

// Handle is what factories may use from the router.
type Handle interface {
	// Tokenizer counts tokens, or is nil when none is configured.
	Tokenizer() TokenCounter
	// Log is the router's logger.
	Log() logr.Logger
}

// TokenCounter counts the tokens of a text.
type TokenCounter interface {
	Count(text string) int
}

// Request is the scheduler's read-only view of one inference request.
type Request struct {
	// ID is the request id (x-request-id).
	ID string
	// Model is the model the client asked for (a route name or LoRA adapter).
	Model string
	// UpstreamModel is the model name sent to the engine.
	UpstreamModel string
	// LoRA is true when Model names a LoRA adapter.
	LoRA bool
	// ModelServer is the namespace/name of the chosen ModelServer.
	ModelServer string
	// Path is the URL path, such as /v1/chat/completions.
	Path string
	// Headers are the client's request headers.
	Headers http.Header
	// Prompt is a bounded prefix of the flattened prompt text (chat messages
	// joined role by role, or the completion prompt). It must not be
	// modified. Plugins that need all of it call WholePrompt.
	Prompt []byte
	// RenderWholePrompt renders the whole flattened prompt when Prompt is a
	// cut of it, else is nil. It is rendered on first use only (most
	// requests are short, and the plugins that read past the cut skip work
	// a request does not need).
	RenderWholePrompt func() []byte
	// PromptJSON is the request's messages (or prompt) value as the client
	// sent it, for plugins that hand it to an engine API such as
	// /tokenize. It aliases a pooled body: valid only while scheduling.
	PromptJSON []byte
	// PromptBytes is the full prompt size in bytes.
	PromptBytes int
	// InputTokens is an estimate of the prompt tokens when a tokenizer is
	// configured, else 0.
	InputTokens int
	// Stream is true for streaming requests.
	Stream bool
	// PrefixHashes is the prefix-cache plugin's per-request cache of the
	// prompt's block hashes; other code must not use it.
	PrefixHashes PrefixHashes
	// PromptTokens is the kvcache-aware plugin's per-request cache of the
	// prompt's token ids (nil: not tokenised yet); other code must not use it.
	PromptTokens []int
}

// WholePrompt is the whole flattened prompt.
func (r *Request) WholePrompt() []byte {
	if r.RenderWholePrompt == nil {
		return r.Prompt
	}
	return r.RenderWholePrompt()
}

// PrefixHashes are a prompt's block hashes and what they were computed with.
type PrefixHashes struct {
	BlockSize, MaxBlocks int
	Model                string
	Hashes               []uint64
}

// Metrics is the engine state of one endpoint, as last scraped.
type Metrics struct {
	// Waiting and Running are the engine's queued and running requests.
	Waiting, Running float64
	// KVCacheUsage is the KV-cache usage in [0,1].
	KVCacheUsage float64
	// TTFT and TPOT are mean seconds over the last scrape interval (0 when
	// unknown).
	TTFT, TPOT float64
	// Models is the set of models (base and LoRA) the engine serves.
	Models map[string]struct{}
	// Scraped is true once a scrape has succeeded.
	Scraped bool
	// At is when the engine answered the scrape, and Interval the period
	// of the scrapes (zero when unknown, as in tests that build Metrics by
	// hand: such samples count as fresh).
	At       time.Time
	Interval time.Duration
	// LatencyAt is when TTFT and TPOT last changed (an engine that
	// finished nothing since keeps its old means).
	LatencyAt time.Time
	// LatencySamples is how many first tokens the TTFT mean averages (the
	// interval's requests): a mean of a few requests says more about
	// which requests they were than about the engine.
	LatencySamples float64
	// Sent and Done are the endpoint's Sent and Done counters when the
	// scrape was sent: what the router had sent and seen finish by then.
	Sent, Done uint64
}

// Endpoint is one engine instance (a pod, or a file-declared address) as the
// scheduler sees it during one run. Plugins must treat it as read-only.
type Endpoint struct {
	// Key is namespace/name, unique among endpoints.
	Key string
	// Address is host:port of the engine.
	Address string
	// Labels are the pod's labels.
	Labels map[string]string
	// Engine is vLLM or SGLang.
	Engine string
	// Metrics is the last scraped engine state (never nil).
	Metrics *Metrics
	// InFlight is the number of requests this router has in flight to the
	// endpoint, at scheduling time.
	InFlight int64
	// Sent and Done count the requests (attempts) this router has sent to
	// the endpoint and seen end, since it appeared; InFlight = Sent − Done.
	// With Metrics.Sent and Metrics.Done they tell what the router did
	// since the last scrape (see Since).
	Sent, Done uint64
}

// Candidate is a scored endpoint.
type Candidate struct {
	Endpoint *Endpoint
	// Total is Σ weight × score.
	Total float64
	// Scores holds each scorer's clamped score, in scorer order.
	Scores []float64
}

// Result is what one scheduling run returns.
type Result struct {
	// Ranked are the candidates in the order the director should try them.
	Ranked []Candidate
	// Scorers names the scorers in the order of Candidate.Scores, with
	// weights.
	Scorers []WeightedName
	// Filtered counts the endpoints each filter removed, in filter order.
	Filtered []FilterOutcome
	// Considered is the number of endpoints before filtering.
	Considered int
}

// WeightedName is a scorer name and its weight.
type WeightedName struct {
	Name   string  `json:"name"`
	Weight float64 `json:"weight"`
}

// FilterOutcome is how many endpoints a filter removed.
type FilterOutcome struct {
	Name    string `json:"name"`
	Removed int    `json:"removed"`
}

// NoArgs is the Factory of a plugin that takes no arguments: it rejects any
// argument (the decoder is strict, so unknown fields fail) and returns p.
func NoArgs(p Plugin) Factory {
	return func(dec *json.Decoder, _ Handle) (Plugin, error) {
		if dec != nil {
			var none struct{}
			if err := dec.Decode(&none); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
}
