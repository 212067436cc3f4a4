// Package kvcacheaware is a precise prefix-cache scorer: it subscribes to
// every candidate engine's KV events (vLLM's ZMQ publisher; SGLang's has the
// same format), keeps an in-process index of the blocks each engine holds
// (internal/router/kvindex), tokenises the request the way the engine does
// and scores each engine by the longest prefix of the request it caches.
package kvcacheaware

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Type is the plugin type name (upstream's).
const Type = "kvcache-aware"

// PortLabel on a pod (or an endpoints-file endpoint) overrides the port of
// its KV-event publisher; "0" means the pod publishes none.
const PortLabel = "networking.serving.volcano.sh/kv-events-port"

// Args are the plugin's arguments: upstream's four, then Kthena's.
type Args struct {
	// BlockSizeToHash is upstream's block size (16). Here engines report
	// their own block size in their events and requests are hashed with
	// it; this value is only reported by the debug endpoint for pods that
	// have not stored a block yet.
	BlockSizeToHash int `json:"blockSizeToHash"`
	// MaxBlocksToMatch bounds the blocks hashed per request (default 8192,
	// 128k tokens at block size 16; upstream's 128 would stop at 2k tokens).
	MaxBlocksToMatch int `json:"maxBlocksToMatch"`
	// VLLMTokenizerPort and SGLangTokenizerPort are upstream's: the pod
	// port of the engine's /tokenize when requests are tokenised by the
	// engine (default: the engine's own port, where vLLM serves it).
	VLLMTokenizerPort   int `json:"vllmTokenizerPort"`
	SGLangTokenizerPort int `json:"sglangTokenizerPort"`

	// KVEventsPort is the engines' KV-event port on the pod address
	// (default 5557, vLLM's); PortLabel overrides it per pod.
	KVEventsPort int `json:"kvEventsPort"`
	// KVEventsTopic is the topic prefix subscribed to (default "": all,
	// which covers vLLM's "kv-events" and SGLang's "").
	KVEventsTopic string `json:"kvEventsTopic"`
	// MaxIndexedBlocks bounds the (pod, block) entries held (default
	// 1,000,000; see docs/kvcache-routing.md for bytes per block).
	MaxIndexedBlocks int `json:"maxIndexedBlocks"`
	// TierWeights weigh a cached block by where it is (defaults: GPU 1,
	// CPU 0.5, other media 0.25).
	TierWeights *TierWeights `json:"tierWeights,omitempty"`
	// Tokenizers choose per model how requests are tokenised (first match
	// wins); models no entry matches use TokenizerEncoding.
	Tokenizers []TokenizerSource `json:"tokenizers,omitempty"`
	// TokenizerEncoding is the in-process tokenizer of models no
	// Tokenizers entry matches (cl100k_base: kthena-sim's). Unset, they are
	// tokenised by the engine's /tokenize, which is right for any model.
	TokenizerEncoding string `json:"tokenizerEncoding"`
	// EngineTokenizeTimeout bounds a /tokenize call (default 100ms); a
	// request whose call fails is scored as a miss everywhere.
	EngineTokenizeTimeout *metav1.Duration `json:"engineTokenizeTimeout,omitempty"`
	// EngineTokenizeCacheSize is how many /tokenize answers are kept,
	// keyed by model and prompt (default 1024).
	EngineTokenizeCacheSize int `json:"engineTokenizeCacheSize"`
}

// TierWeights are per-medium weights in [0,1].
type TierWeights struct {
	GPU   *float64 `json:"gpu,omitempty"`
	CPU   *float64 `json:"cpu,omitempty"`
	Other *float64 `json:"other,omitempty"`
}

// Index is the block index the plugin reads and the engine subscriptions
// it drives. internal/router/kvindex implements it; the plugin registration
// (internal/router/plugins) passes its Open to FactoryWith.
type Index interface {
	// Ensure subscribes to the pod's publisher unless already subscribed
	// to that endpoint.
	Ensure(pod, endpoint, topic string)
	// Remove stops the pod's subscription and forgets its blocks.
	Remove(pod string)
	// State tells whether the pod is subscribed to and, when its blocks
	// are known (events since the last resynchronisation), its block size
	// (0: unknown).
	State(pod string) (subscribed bool, blockSize int)
	// Lookup calls fn for each of pods whose state the index knows, with
	// the number of leading blocks of the request's tokens it caches, the
	// request's blocks at that pod's block size (at most maxBlocks, one
	// fewer when cut) and the tier-weighted matched blocks. tokens is
	// called only when some pod is known, so a fleet without events costs
	// no tokenisation.
	Lookup(tokens func() (ids []int, cut bool), lora string, maxBlocks int, pods []string, fn func(pod string, matched, total int, weighted float64))
	// Close stops every subscription.
	Close()
}

// IndexOptions configure an Index.
type IndexOptions struct {
	MaxBlocks         int
	TierWeights       [3]float64 // GPU, CPU, other
	TokenizerEncoding string
	// Tokenizer is the plugin's, for the index's debug probes (nil: the
	// index loads TokenizerEncoding).
	Tokenizer        *tokenizer.Tokenizer
	MaxBlocksToMatch int
	// Counters are the plugin's own counters (engine /tokenize calls),
	// reported with the index's.
	Counters func() map[string]int64
	// ModelTokenizer is the in-process tokenizer of a model, for probes
	// that name one (nil: the model is tokenised by its engines).
	ModelTokenizer func(model string) *tokenizer.Tokenizer
}

// Opener creates an Index.
type Opener func(IndexOptions) (Index, error)

// Plugin is the scorer. Its subscriptions stop when it is no longer
// referenced (a configuration reload that replaced it) or on Close.
type Plugin struct{ *core }

type core struct {
	args Args
	toks *tokenizers
	idx  Index
	log  logr.Logger
}

var (
	_ framework.Scorer              = (*Plugin)(nil)
	_ framework.EndpointObserver    = (*Plugin)(nil)
	_ framework.EndpointWatcher     = (*Plugin)(nil)
	_ framework.CachedTokensCounter = (*Plugin)(nil)
)

// Factory fails: the plugin needs an index implementation (FactoryWith).
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return FactoryWith(nil)(dec, h)
}

// FactoryWith returns the plugin's factory over indexes from open.
func FactoryWith(open Opener) framework.Factory {
	return func(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
		a := Args{}
		if dec != nil {
			if err := dec.Decode(&a); err != nil {
				return nil, err
			}
		}
		if open == nil {
			return nil, fmt.Errorf("%s: no KV index in this build", Type)
		}
		p, err := New(a, open)
		if err == nil && h != nil {
			p.log = h.Log().WithName(Type)
		}
		return p, err
	}
}

// New validates args and returns a running plugin.
func New(a Args, open Opener) (*Plugin, error) {
	if a.BlockSizeToHash < 0 || a.MaxBlocksToMatch < 0 || a.KVEventsPort < 0 || a.KVEventsPort > 65535 || a.MaxIndexedBlocks < 0 ||
		a.VLLMTokenizerPort < 0 || a.SGLangTokenizerPort < 0 {
		return nil, fmt.Errorf("args must be >= 0 (and ports <= 65535): %+v", a)
	}
	if a.BlockSizeToHash == 0 {
		a.BlockSizeToHash = 16
	}
	if a.MaxBlocksToMatch == 0 {
		a.MaxBlocksToMatch = 8192
	}
	if a.KVEventsPort == 0 {
		a.KVEventsPort = DefaultKVEventsPort
	}
	if a.MaxIndexedBlocks == 0 {
		a.MaxIndexedBlocks = 1_000_000
	}
	w := [3]float64{1, 0.5, 0.25}
	if tw := a.TierWeights; tw != nil {
		for i, v := range []*float64{tw.GPU, tw.CPU, tw.Other} {
			if v == nil {
				continue
			}
			if *v < 0 || *v > 1 {
				return nil, fmt.Errorf("tierWeights must be in [0,1]")
			}
			w[i] = *v
		}
	}
	timeout := defaultEngineTokenizeTimeout
	if a.EngineTokenizeTimeout != nil {
		if timeout = a.EngineTokenizeTimeout.Duration; timeout <= 0 {
			return nil, fmt.Errorf("engineTokenizeTimeout must be > 0")
		}
	}
	if a.EngineTokenizeCacheSize < 0 {
		return nil, fmt.Errorf("engineTokenizeCacheSize must be >= 0")
	}
	if a.EngineTokenizeCacheSize == 0 {
		a.EngineTokenizeCacheSize = 1024
	}
	toks, err := newTokenizers(a.Tokenizers, a.TokenizerEncoding,
		newEngineTokenizer(timeout, a.EngineTokenizeCacheSize, a.VLLMTokenizerPort, a.SGLangTokenizerPort))
	if err != nil {
		return nil, err
	}
	// The debug endpoint's probes tokenise in process.
	probeTok, err := tokenizer.New(a.TokenizerEncoding)
	if err != nil {
		return nil, err
	}
	idx, err := open(IndexOptions{MaxBlocks: a.MaxIndexedBlocks, TierWeights: w, TokenizerEncoding: a.TokenizerEncoding,
		Tokenizer: probeTok, MaxBlocksToMatch: a.MaxBlocksToMatch, Counters: toks.engine.counters, ModelTokenizer: toks.Local})
	if err != nil {
		return nil, err
	}
	c := &core{args: a, toks: toks, idx: idx, log: logr.Discard()}
	p := &Plugin{c}
	runtime.AddCleanup(p, func(idx Index) { idx.Close() }, idx)
	return p, nil
}

// DefaultKVEventsPort is vLLM's default KV-event publisher port.
const DefaultKVEventsPort = 5557

// Type implements framework.Plugin.
func (p *Plugin) Type() string { return Type }

// Index is the plugin's block index.
func (p *Plugin) Index() Index { return p.idx }

// Close stops every subscription.
func (p *Plugin) Close() { p.idx.Close() }

// Target is the ZMQ endpoint ep publishes its KV events on, if any: the
// pod's address with the configured port, or the port of PortLabel.
func (p *Plugin) Target(ep *framework.Endpoint) (string, bool) {
	port := p.args.KVEventsPort
	if v, ok := ep.Labels[PortLabel]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 65535 {
			return "", false
		}
		port = n
	}
	host := ep.Address
	if h, _, err := net.SplitHostPort(ep.Address); err == nil {
		host = h
	}
	if host == "" {
		return "", false
	}
	return "tcp://" + net.JoinHostPort(host, strconv.Itoa(port)), true
}

// Score gives each endpoint the weighted share of the request's blocks it
// holds as a prefix: Σ tier weight over the matched prefix / all blocks.
// Endpoints the index knows nothing about (no subscription yet, no event
// since the last resynchronisation) score 0, like a miss, so a fleet
// without KV events ranks as if the plugin were absent.
func (p *Plugin) Score(ctx context.Context, req *framework.Request, eps []*framework.Endpoint, out []float64) {
	known := false
	for _, ep := range eps {
		subscribed, bs := p.idx.State(ep.Key)
		if !subscribed {
			p.subscribe(ep)
		}
		known = known || bs > 0
	}
	if !known {
		return // every endpoint scores 0: no work, no allocation
	}
	pods := make([]string, len(eps))
	at := make(map[string]int, len(eps))
	for i, ep := range eps {
		pods[i] = ep.Key
		at[ep.Key] = i
	}
	p.Lookup(ctx, req, eps, pods, func(pod string, _, total int, weighted float64) {
		if total > 0 {
			out[at[pod]] = weighted / float64(total)
		}
	})
}

func (p *Plugin) subscribe(ep *framework.Endpoint) {
	if t, ok := p.Target(ep); ok {
		p.idx.Ensure(ep.Key, t, p.args.KVEventsTopic)
	}
}

// Lookup tokenises the request (only when the index knows one of pods)
// and reports each known pod's match. eps are the engines a /tokenize call
// may go to.
func (p *Plugin) Lookup(ctx context.Context, req *framework.Request, eps []*framework.Endpoint, pods []string,
	fn func(pod string, matched, total int, weighted float64)) {
	lora := ""
	if req.LoRA {
		lora = req.UpstreamModel
	}
	tokens := func() ([]int, bool) { return p.tokens(ctx, req, eps), false }
	p.idx.Lookup(tokens, lora, p.args.MaxBlocksToMatch, pods, fn)
}

// tokens tokenises req once (later calls return the first result; a
// failure is logged and gives no tokens, so nothing matches).
func (p *Plugin) tokens(ctx context.Context, req *framework.Request, eps []*framework.Endpoint) []int {
	if req.PromptTokens != nil {
		return req.PromptTokens
	}
	ids, err := p.toks.For(req.UpstreamModel).Tokens(ctx, req, eps)
	if err != nil {
		p.log.V(1).Info("Request not tokenised; scored as a miss", "request", req.ID, "model", req.UpstreamModel, "err", err.Error())
		ids = []int{}
	}
	req.PromptTokens = ids
	return ids
}

// CachedPromptTokens is how many leading tokens of the request ep holds,
// from its events, for the PD decider; ok is false when the index does not
// know ep or the request could not be tokenised.
func (p *Plugin) CachedPromptTokens(ctx context.Context, req *framework.Request, ep *framework.Endpoint) (cached, total int, ok bool) {
	_, bs := p.idx.State(ep.Key)
	if bs <= 0 {
		return 0, 0, false
	}
	matched := -1
	p.Lookup(ctx, req, []*framework.Endpoint{ep}, []string{ep.Key}, func(_ string, m, _ int, _ float64) { matched = m })
	if matched < 0 || len(req.PromptTokens) == 0 {
		return 0, 0, false
	}
	return matched * bs, len(req.PromptTokens), true
}

// EndpointsChanged subscribes to every endpoint's publisher, so the index
// holds an engine's blocks by its first request.
func (p *Plugin) EndpointsChanged(eps []*framework.Endpoint) {
	for _, ep := range eps {
		p.subscribe(ep)
	}
}

// EndpointRemoved stops the endpoint's subscription and forgets its blocks.
func (p *Plugin) EndpointRemoved(key string) { p.idx.Remove(key) }

// chatRoles are the roles a flattened chat prompt's lines may start with.
var chatRoles = []string{"system", "user", "assistant", "tool", "developer", "function"}

// Tokens tokenises a request's whole flattened prompt (the router's
// rendering: "role: content\n" per chat message, or the completion prompt)
// the way kthena-sim and vLLM do: chat messages through the chat template
// with the generation prompt, completion prompts as text.
func Tokens(tok *tokenizer.Tokenizer, path string, prompt []byte) ([]int, error) {
	text := string(prompt)
	if !isChat(path) {
		return tok.EncodePrompt(text), nil
	}
	return tok.EncodeChat(ParseFlattened(text), true)
}

// ParseFlattened splits the router's flattened chat rendering back into
// messages. A content line that itself starts with "<role>: " is taken as a
// new message (the rendering cannot tell them apart); such a prompt then
// tokenises differently from the engine and simply matches less.
func ParseFlattened(text string) []tokenizer.Message {
	var msgs []tokenizer.Message
	var cur *tokenizer.Message
	var b strings.Builder
	flush := func() {
		if cur != nil {
			cur.Content = b.String()
			msgs = append(msgs, *cur)
		}
		b.Reset()
	}
	for line := range strings.SplitSeq(strings.TrimSuffix(text, "\n"), "\n") {
		if role, rest, ok := roleLine(line); ok {
			flush()
			cur = &tokenizer.Message{Role: role}
			b.WriteString(rest)
			continue
		}
		if cur == nil {
			cur = &tokenizer.Message{Role: "user"}
		} else {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	flush()
	return msgs
}

func roleLine(line string) (role, rest string, ok bool) {
	for _, r := range chatRoles {
		if strings.HasPrefix(line, r) && strings.HasPrefix(line[len(r):], ": ") {
			return r, line[len(r)+2:], true
		}
	}
	return "", "", false
}
