// Package prefixcache is an approximate prefix-cache scorer: it remembers
// which engine each prompt prefix was sent to (chained block hashes, a
// per-engine LRU) and prefers engines that likely still cache the longest
// prefix of the new prompt.
package prefixcache

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/cespare/xxhash/v2"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "prefix-cache"

// Args are the plugin's arguments (upstream names and defaults).
type Args struct {
	// BlockSizeToHash is the block size in bytes of prompt text (64).
	BlockSizeToHash int `json:"blockSizeToHash"`
	// MaxBlocksToMatch bounds the blocks hashed per prompt (128).
	MaxBlocksToMatch int `json:"maxBlocksToMatch"`
	// MaxHashCacheSize is each engine's LRU capacity in blocks (50000).
	MaxHashCacheSize int `json:"maxHashCacheSize"`
	// TopKMatches is how many engines with the longest match score (5).
	TopKMatches int `json:"topKMatches"`
	// MaxPromptBytes bounds the prompt text hashed (Kthena extension,
	// default 1 MiB). Past the first maxBlocksToMatch blocks the prompt is
	// hashed on in chunks of LongBlockFactor blocks, so long conversations
	// keep matching while a prompt costs at most a thousand or so hashes.
	MaxPromptBytes int `json:"maxPromptBytes"`
}

// LongBlockFactor is how many blocks one chunk past the first
// maxBlocksToMatch blocks covers.
const LongBlockFactor = 16

// Plugin is the prefix index. It is safe for concurrent use.
type Plugin struct {
	args Args

	mu     sync.Mutex
	owners map[uint64][]string // block hash -> engines holding it
	lrus   map[string]*lru     // engine -> its blocks, least recent first out
	evict  func(n int)
}

var (
	_ framework.Scorer           = (*Plugin)(nil)
	_ framework.PreRequest       = (*Plugin)(nil)
	_ framework.EndpointObserver = (*Plugin)(nil)
	_ framework.PrefixEstimator  = (*Plugin)(nil)
)

// Factory builds the plugin from args.
func Factory(dec *json.Decoder, _ framework.Handle) (framework.Plugin, error) {
	a := Args{}
	if dec != nil {
		if err := dec.Decode(&a); err != nil {
			return nil, err
		}
	}
	if a.BlockSizeToHash < 0 || a.MaxBlocksToMatch < 0 || a.MaxHashCacheSize < 0 || a.TopKMatches < 0 || a.MaxPromptBytes < 0 {
		return nil, fmt.Errorf("args must be >= 0: %+v", a)
	}
	return New(a), nil
}

// New returns the plugin; zero args take upstream's defaults.
func New(a Args) *Plugin {
	if a.BlockSizeToHash == 0 {
		a.BlockSizeToHash = 64
	}
	if a.MaxBlocksToMatch == 0 {
		a.MaxBlocksToMatch = 128
	}
	if a.MaxHashCacheSize == 0 {
		a.MaxHashCacheSize = 50000
	}
	if a.TopKMatches == 0 {
		a.TopKMatches = 5
	}
	if a.MaxPromptBytes == 0 {
		a.MaxPromptBytes = 1 << 20
	}
	return &Plugin{args: a, owners: map[uint64][]string{}, lrus: map[string]*lru{}}
}

// OnEvict registers a callback counting evicted blocks (for metrics).
func (p *Plugin) OnEvict(f func(n int)) { p.evict = f }

// MaxPromptBytes is how much prompt text the plugin ever reads.
func (p *Plugin) MaxPromptBytes() int {
	return max(p.args.MaxPromptBytes, p.args.BlockSizeToHash*p.args.MaxBlocksToMatch)
}

// Type implements framework.Plugin.
func (p *Plugin) Type() string { return Type }

// Hashes returns the chained block hashes of a prompt: h0 = xxh64(model),
// hᵢ = xxh64(decimal(hᵢ₋₁) ‖ blockᵢ), over full blocks only. The first
// maxBlocks blocks are blockSize bytes of short; once those are full the
// chain goes on over long (what follows them: the rest of the prompt) in
// blocks of LongBlockFactor×blockSize bytes, up to maxBytes in all. Block
// boundaries depend only on the offset, so a conversation's next turn
// hashes its history the same.
func Hashes(model string, short, long []byte, blockSize, maxBlocks, maxBytes int, dst []uint64) []uint64 {
	prev := xxhash.Sum64String(model)
	// decimal(prev) ‖ block, hashed in one call.
	var stack [20 + 64]byte
	buf := stack[:0]
	if blockSize > 64 {
		buf = make([]byte, 0, 20+blockSize)
	}
	block := func(b []byte) {
		var d xxhash.Digest
		d.Reset()
		_, _ = d.Write(strconv.AppendUint(buf[:0], prev, 10))
		_, _ = d.Write(b)
		prev = d.Sum64()
		dst = append(dst, prev)
	}
	for i := range maxBlocks {
		if (i+1)*blockSize > len(short) {
			return dst
		}
		block(short[i*blockSize : (i+1)*blockSize])
	}
	size := blockSize * LongBlockFactor
	long = long[:min(len(long), max(0, maxBytes-maxBlocks*blockSize))]
	for off := 0; off+size <= len(long); off += size {
		block(long[off : off+size])
	}
	return dst
}

// promptParts are the parts of req that Hashes reads: the flattened
// prompt's first maxBlocks blocks, then the rest. Past the router's eager
// prompt window the rest is read from the raw JSON (the same prompt sent
// the same way has the same bytes there), which costs no rendering of a
// long prompt; raw JSON is at least as long as its flattened text, so
// every byte of the prompt past the short blocks lies in it.
func promptParts(req *framework.Request, shortBytes int) (short, long []byte) {
	short = req.Prompt
	if len(short) < shortBytes && req.RenderWholePrompt != nil {
		short = req.WholePrompt() // short blocks configured past the eager window
	}
	if len(short) < shortBytes {
		return short, nil
	}
	if req.PromptJSON != nil {
		return short[:shortBytes], req.PromptJSON[min(shortBytes, len(req.PromptJSON)):]
	}
	whole := req.WholePrompt()
	return whole[:shortBytes], whole[shortBytes:]
}

// BlockBytes is the size of block i.
func (p *Plugin) BlockBytes(i int) int {
	if i < p.args.MaxBlocksToMatch {
		return p.args.BlockSizeToHash
	}
	return p.args.BlockSizeToHash * LongBlockFactor
}

// coveredBytes is how many prompt bytes the first n blocks cover.
func (p *Plugin) coveredBytes(n int) int {
	short := min(n, p.args.MaxBlocksToMatch)
	return short*p.args.BlockSizeToHash + (n-short)*p.args.BlockSizeToHash*LongBlockFactor
}

// hashes returns the request's block hashes, computed once per request (Score
// and PreRequest both need them).
func (p *Plugin) hashes(req *framework.Request) []uint64 {
	c := &req.PrefixHashes
	if c.Hashes != nil && c.BlockSize == p.args.BlockSizeToHash && c.MaxBlocks == p.args.MaxBlocksToMatch && c.Model == req.UpstreamModel {
		return c.Hashes
	}
	short, long := promptParts(req, p.args.BlockSizeToHash*p.args.MaxBlocksToMatch)
	hs := Hashes(req.UpstreamModel, short, long, p.args.BlockSizeToHash, p.args.MaxBlocksToMatch, p.args.MaxPromptBytes,
		make([]uint64, 0, min(len(short)/p.args.BlockSizeToHash, p.args.MaxBlocksToMatch)+
			min(len(long), p.args.MaxPromptBytes)/(p.args.BlockSizeToHash*LongBlockFactor)))
	*c = framework.PrefixHashes{BlockSize: p.args.BlockSizeToHash, MaxBlocks: p.args.MaxBlocksToMatch, Model: req.UpstreamModel, Hashes: hs}
	return hs
}

// Score gives each of the top-K engines with the longest cached prefix
// the share of the hashed prompt bytes it matches; others get 0.
func (p *Plugin) Score(_ context.Context, req *framework.Request, eps []*framework.Endpoint, out []float64) {
	hs := p.hashes(req)
	if len(hs) == 0 {
		return
	}
	matched := p.Match(hs)
	if len(matched) == 0 {
		return
	}
	// Keep the top-K engines by match length.
	type km struct {
		key string
		n   int
	}
	top := make([]km, 0, p.args.TopKMatches+1)
	for k, n := range matched {
		top = append(top, km{k, n})
	}
	if len(top) > p.args.TopKMatches {
		// partial selection; K is small
		for i := 0; i < p.args.TopKMatches; i++ {
			best := i
			for j := i + 1; j < len(top); j++ {
				if top[j].n > top[best].n {
					best = j
				}
			}
			top[i], top[best] = top[best], top[i]
		}
		top = top[:p.args.TopKMatches]
	}
	for i, ep := range eps {
		for _, t := range top {
			if t.key == ep.Key {
				out[i] = float64(p.coveredBytes(t.n)) / float64(p.coveredBytes(len(hs)))
				break
			}
		}
	}
}

// CachedPromptBytes is the length of the prompt prefix ep is believed to
// hold: its matched blocks times the block size.
func (p *Plugin) CachedPromptBytes(_ context.Context, req *framework.Request, ep *framework.Endpoint) int {
	hs := p.hashes(req)
	if len(hs) == 0 {
		return 0
	}
	return p.coveredBytes(p.Match(hs)[ep.Key])
}

// Match returns, per engine, how many leading blocks of hs it holds.
func (p *Plugin) Match(hs []uint64) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cur map[string]int
	for i, h := range hs {
		owners := p.owners[h]
		if len(owners) == 0 {
			break
		}
		if i == 0 {
			cur = make(map[string]int, len(owners))
			for _, o := range owners {
				cur[o] = 1
			}
			continue
		}
		progressed := false
		for _, o := range owners {
			if n, ok := cur[o]; ok && n == i {
				cur[o] = i + 1
				progressed = true
			}
		}
		if !progressed {
			break
		}
	}
	return cur
}

// PreRequest records that ep will now cache the prompt's blocks.
func (p *Plugin) PreRequest(_ context.Context, req *framework.Request, ep *framework.Endpoint) {
	hs := p.hashes(req)
	if len(hs) == 0 {
		return
	}
	p.Record(ep.Key, hs)
}

// Record adds hs to the engine's blocks, evicting its least recent ones.
func (p *Plugin) Record(key string, hs []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lrus[key]
	if l == nil {
		l = newLRU(p.args.MaxHashCacheSize)
		p.lrus[key] = l
	}
	evicted := 0
	for _, h := range hs {
		if l.touch(h) {
			continue
		}
		p.owners[h] = append(p.owners[h], key)
		if old, ok := l.add(h); ok {
			p.removeOwner(old, key)
			evicted++
		}
	}
	if evicted > 0 && p.evict != nil {
		p.evict(evicted)
	}
}

// EndpointRemoved drops everything the engine held.
func (p *Plugin) EndpointRemoved(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.lrus[key]
	if l == nil {
		return
	}
	for h := range l.items {
		p.removeOwner(h, key)
	}
	delete(p.lrus, key)
}

// Entries is the number of (block, engine) pairs held.
func (p *Plugin) Entries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lrus {
		n += len(l.items)
	}
	return n
}

func (p *Plugin) removeOwner(h uint64, key string) {
	owners := p.owners[h]
	for i, o := range owners {
		if o == key {
			owners[i] = owners[len(owners)-1]
			owners = owners[:len(owners)-1]
			break
		}
	}
	if len(owners) == 0 {
		delete(p.owners, h)
	} else {
		p.owners[h] = owners
	}
}
