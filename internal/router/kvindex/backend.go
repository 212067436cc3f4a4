package kvindex

import (
	"context"
	"fmt"
	"maps"
	"sort"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Backend is an index with its engine subscriptions: the kvcache-aware
// scorer's Index. It registers itself with the debug endpoint while open.
type Backend struct {
	x       *Index
	subs    *Subscriptions
	cancel  context.CancelFunc
	unreg   func()
	weights [3]float64
	tok     *tokenizer.Tokenizer
	maxKeys int
	// counters are the scorer's own, reported with the index's.
	counters func() map[string]int64
	// modelTok is a model's in-process tokenizer, for probes naming one.
	modelTok func(model string) *tokenizer.Tokenizer
}

var (
	_ kvcacheaware.Index = (*Backend)(nil)
	_ Inspector          = (*Backend)(nil)
)

// Open returns a running backend; it implements kvcacheaware.Opener.
func Open(o kvcacheaware.IndexOptions) (kvcacheaware.Index, error) {
	return NewBackend(o, logr.Discard())
}

// NewBackend returns a running backend logging to log.
func NewBackend(o kvcacheaware.IndexOptions, log logr.Logger) (*Backend, error) {
	tok := o.Tokenizer
	if tok == nil {
		var err error
		if tok, err = tokenizer.New(o.TokenizerEncoding); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	x := New(o.MaxBlocks)
	b := &Backend{x: x, subs: NewSubscriptions(ctx, x, log), cancel: cancel, weights: o.TierWeights, tok: tok,
		maxKeys: o.MaxBlocksToMatch, counters: o.Counters, modelTok: o.ModelTokenizer}
	b.unreg = Register(b)
	return b, nil
}

// Index is the block index.
func (b *Backend) Index() *Index { return b.x }

// Subscriptions are the engine subscriptions.
func (b *Backend) Subscriptions() *Subscriptions { return b.subs }

// Ensure implements kvcacheaware.Index.
func (b *Backend) Ensure(pod, endpoint, topic string) {
	b.subs.Ensure(Target{Pod: pod, Endpoint: endpoint, Topic: topic})
}

// State implements kvcacheaware.Index.
func (b *Backend) State(pod string) (subscribed bool, blockSize int) {
	_, subscribed = (*b.subs.view.Load())[pod]
	return subscribed, b.x.knownBlockSize(pod)
}

// Remove implements kvcacheaware.Index.
func (b *Backend) Remove(pod string) { b.subs.Remove(pod) }

// Close implements kvcacheaware.Index.
func (b *Backend) Close() {
	b.unreg()
	b.cancel()
	b.subs.Close()
}

// Lookup implements kvcacheaware.Index: pods are grouped by the block size
// their engines reported, the tokens are chained once per size.
func (b *Backend) Lookup(tokenize func() ([]int, bool), lora string, maxBlocks int, pods []string,
	fn func(pod string, matched, total int, weighted float64)) {
	var sizes [4]struct {
		bs   int
		pods []string
	}
	n := 0
	var more map[int][]string
	for _, pod := range pods {
		bs := b.x.knownBlockSize(pod)
		if bs <= 0 {
			continue
		}
		i := 0
		for i < n && sizes[i].bs != bs {
			i++
		}
		switch {
		case i < n:
			sizes[i].pods = append(sizes[i].pods, pod)
		case n < len(sizes):
			sizes[n].bs, sizes[n].pods = bs, []string{pod}
			n++
		default:
			if more == nil {
				more = map[int][]string{}
			}
			more[bs] = append(more[bs], pod)
		}
	}
	if n == 0 {
		return
	}
	tokens, cut := tokenize()
	do := func(bs int, ps []string) {
		keys := Keys(tokens, cut, lora, bs, maxBlocks)
		for pod, m := range b.x.Lookup(keys, ps, b.weights) {
			fn(pod, m.Blocks, len(keys), m.Weighted)
		}
	}
	for i := range n {
		do(sizes[i].bs, sizes[i].pods)
	}
	for bs, ps := range more {
		do(bs, ps)
	}
}

// Keys are the request's block keys at block size bs: at most maxBlocks,
// the last one left out when the prompt was cut.
func Keys(tokens []int, cut bool, lora string, bs, maxBlocks int) []Key {
	n := len(tokens) / bs
	if maxBlocks > 0 {
		n = min(n, maxBlocks)
	}
	if cut && n > 0 {
		n--
	}
	return Chain(make([]Key, 0, n), Root(lora), tokens[:n*bs], bs)
}

// Size implements Inspector.
func (b *Backend) Size() Size {
	x := b.x
	s := Size{Entries: x.Entries(), MaxBlocks: x.MaxBlocks(), Counters: x.Counters()}
	if b.counters != nil {
		maps.Copy(s.Counters, b.counters())
	}
	eps := map[string]string{}
	for _, t := range b.subs.Targets() {
		eps[t.Pod] = t.Endpoint
	}
	for _, pod := range x.Pods() {
		s.Pods = append(s.Pods, PodSize{Pod: pod, Endpoint: eps[pod], Connected: b.subs.Connected(pod),
			Known: x.Known(pod), BlockSize: x.BlockSize(pod), Blocks: x.PodSize(pod)})
	}
	sort.Slice(s.Pods, func(i, j int) bool { return s.Pods[i].Pod < s.Pods[j].Pod })
	return s
}

// Probe implements Inspector.
func (b *Backend) Probe(p Probe) ProbeResult {
	tok := b.tok
	if p.Model != "" && b.modelTok != nil {
		if tok = b.modelTok(p.Model); tok == nil {
			return ProbeResult{Error: fmt.Sprintf("model %q is tokenised by its engines' /tokenize; probes tokenise in process only: "+
				"give the model a path or encoding in kvcache-aware's tokenizers, or probe without a model (the built-in tokenizer)", p.Model)}
		}
	}
	var tokens []int
	if p.Messages != nil {
		msgs := make([]tokenizer.Message, len(p.Messages))
		for i, m := range p.Messages {
			msgs[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
		}
		var err error
		if tokens, err = tok.EncodeChat(msgs, true); err != nil {
			return ProbeResult{Error: err.Error()}
		}
	} else {
		tokens = tok.EncodePrompt(p.Prompt)
	}
	x := b.x
	pods := p.Pods
	if len(pods) == 0 {
		pods = x.Pods()
		sort.Strings(pods)
	}
	res := ProbeResult{Tokens: len(tokens)}
	for _, pod := range pods {
		bs := x.BlockSize(pod)
		pm := ProbeMatch{Pod: pod, Known: x.Known(pod), BlockSize: bs, Blocks: x.PodSize(pod)}
		if bs > 0 {
			keys := Keys(tokens, false, p.LoRA, bs, b.maxKeys)
			if m, ok := x.Lookup(keys, []string{pod}, b.weights)[pod]; ok {
				pm.MatchedBlocks, pm.MatchedTokens = m.Blocks, m.Blocks*bs
				if len(keys) > 0 {
					pm.Score = m.Weighted / float64(len(keys))
				}
			}
		}
		res.Pods = append(res.Pods, pm)
	}
	return res
}
