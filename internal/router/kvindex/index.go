// Package kvindex is the router's in-process index of the blocks every
// engine holds in its KV cache, built from the engines' own KV events
// (vLLM's BlockStored, BlockRemoved and AllBlocksCleared over ZMQ; SGLang
// publishes the same format).
//
// Blocks are keyed by the router's own chained hash of their token IDs
// (Key), recomputed from the token IDs each BlockStored carries, so the
// index does not depend on the engine's hash seed or algorithm: a request
// tokenised the same way maps to the same keys. Each engine's hashes are
// kept per pod only to resolve parents and removals.
//
// The index is sharded by key (readers take one shard read lock per block);
// each pod's state is written by that pod's subscriber only. Memory is
// bounded by a total number of (pod, block) entries: beyond it the largest
// pod's oldest entries are dropped, which can only make the index
// under-estimate a pod's cache, never claim a block the pod does not hold.
package kvindex

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Key is the router's hash of a block and everything before it.
type Key uint64

// Tier is where a block is stored.
type Tier uint8

// Tiers, best first.
const (
	TierGPU Tier = iota
	TierCPU
	TierOther
	numTiers
)

// TierOf maps an event's medium ("GPU", "CPU", "cpu", ...; empty means GPU,
// as engines that omit it store on the accelerator) to a tier.
func TierOf(medium string) Tier {
	switch medium {
	case "", "GPU", "gpu", "cuda", "CUDA", "HBM", "hbm":
		return TierGPU
	case "CPU", "cpu", "cpu_pinned", "DRAM", "dram":
		return TierCPU
	}
	return TierOther
}

// Root is the parent key of a sequence's first block; lora is the LoRA
// adapter name ("" for the base model), so adapters never share blocks.
func Root(lora string) Key {
	return Key(xxhash.Sum64String("kthena-kv\x00" + lora))
}

// Chain returns the keys of every full block of tokens, appended to dst.
func Chain(dst []Key, root Key, tokens []int, blockSize int) []Key {
	if blockSize <= 0 {
		return dst
	}
	var stack [8 + 4*64]byte
	buf := stack[:0]
	if 8+4*blockSize > len(stack) {
		buf = make([]byte, 0, 8+4*blockSize)
	}
	parent := root
	for i := 0; i+blockSize <= len(tokens); i += blockSize {
		parent = next(buf, parent, tokens[i:i+blockSize])
		dst = append(dst, parent)
	}
	return dst
}

func next(buf []byte, parent Key, tokens []int) Key {
	buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(parent))
	for _, t := range tokens {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
	}
	return Key(xxhash.Sum64(buf))
}

const numShards = 64

// holder is one pod holding a block: which tiers hold a copy.
type holder struct {
	pod   uint32
	tiers uint8 // bit per Tier
}

type shard struct {
	mu sync.RWMutex
	m  map[Key][]holder
}

// Index maps block keys to the pods holding them. It is safe for concurrent
// use: lookups run concurrently with one writer per pod.
type Index struct {
	shards    [numShards]shard
	maxBlocks int64
	entries   atomic.Int64 // (pod, engine block) entries

	mu     sync.RWMutex // guards pods, byID, nextID
	pods   map[string]*pod
	byID   map[uint32]*pod
	nextID uint32

	evictMu sync.Mutex
	stats   Stats
	lag     atomic.Pointer[func(time.Duration)]
}

// ObserveLag makes every pod's writer call fn with the age of each batch
// it applied (now minus the batch's publish timestamp): how late the index
// holds what an engine published, on the router's clock, so meaningful when
// the clocks agree (the benchmark's engines share its process). nil stops.
func (x *Index) ObserveLag(fn func(time.Duration)) {
	if fn == nil {
		x.lag.Store(nil)
		return
	}
	x.lag.Store(&fn)
}

// Stats are counters of what the index ingested.
type Stats struct {
	Batches, Events, Stored, Removed, Cleared, Orphans, Resyncs, Evicted, Malformed atomic.Int64
}

// New returns an index holding at most maxBlocks (pod, block) entries
// (0: unbounded).
func New(maxBlocks int) *Index {
	x := &Index{maxBlocks: int64(maxBlocks), pods: map[string]*pod{}, byID: map[uint32]*pod{}}
	for i := range x.shards {
		x.shards[i].m = map[Key][]holder{}
	}
	return x
}

func (x *Index) shard(k Key) *shard {
	return &x.shards[uint64(k)%numShards]
}

// Entries is the number of (pod, block) entries held.
func (x *Index) Entries() int { return int(x.entries.Load()) }

// MaxBlocks is the configured bound (0: none).
func (x *Index) MaxBlocks() int { return int(x.maxBlocks) }

// Counters returns a snapshot of the ingest counters.
func (x *Index) Counters() map[string]int64 {
	s := &x.stats
	return map[string]int64{"batches": s.Batches.Load(), "events": s.Events.Load(), "stored": s.Stored.Load(),
		"removed": s.Removed.Load(), "cleared": s.Cleared.Load(), "orphans": s.Orphans.Load(),
		"resyncs": s.Resyncs.Load(), "evicted": s.Evicted.Load(), "malformed": s.Malformed.Load()}
}

func (x *Index) add(k Key, id uint32, t Tier) {
	s := x.shard(k)
	s.mu.Lock()
	hs := s.m[k]
	for i := range hs {
		if hs[i].pod == id {
			hs[i].tiers |= 1 << t
			s.mu.Unlock()
			return
		}
	}
	s.m[k] = append(hs, holder{pod: id, tiers: 1 << t})
	s.mu.Unlock()
}

// setTiers sets the pod's tiers of k; zero removes the pod from k.
func (x *Index) setTiers(k Key, id uint32, tiers uint8) {
	s := x.shard(k)
	s.mu.Lock()
	hs := s.m[k]
	for i := range hs {
		if hs[i].pod != id {
			continue
		}
		if tiers != 0 {
			hs[i].tiers = tiers
			break
		}
		hs[i] = hs[len(hs)-1]
		hs = hs[:len(hs)-1]
		if len(hs) == 0 {
			delete(s.m, k)
		} else {
			s.m[k] = hs
		}
		break
	}
	s.mu.Unlock()
}

// Match is one pod's cached prefix of a request.
type Match struct {
	// Blocks is the number of leading blocks the pod holds.
	Blocks int
	// Weighted is Σ over those blocks of the weight of the best tier holding
	// each one.
	Weighted float64
}

// Lookup returns, for each of the named pods, the longest prefix of keys it
// holds; weights give each tier's weight (indexed by Tier). Pods the index
// does not know are absent from the result.
func (x *Index) Lookup(keys []Key, pods []string, weights [3]float64) map[string]Match {
	if len(keys) == 0 || len(pods) == 0 {
		return nil
	}
	ids := make(map[uint32]int, len(pods)) // pod id -> index in pods
	x.mu.RLock()
	for i, name := range pods {
		if p := x.pods[name]; p != nil {
			ids[p.id] = i
		}
	}
	x.mu.RUnlock()
	if len(ids) == 0 {
		return nil
	}
	blocks := make([]int, len(pods))
	weighted := make([]float64, len(pods))
	for i, k := range keys {
		s := x.shard(k)
		progressed := false
		s.mu.RLock()
		for _, h := range s.m[k] {
			j, ok := ids[h.pod]
			if !ok || blocks[j] != i {
				continue
			}
			blocks[j]++
			weighted[j] += weights[bestTier(h.tiers)]
			progressed = true
		}
		s.mu.RUnlock()
		if !progressed {
			break
		}
	}
	out := make(map[string]Match, len(ids))
	for _, j := range ids {
		out[pods[j]] = Match{Blocks: blocks[j], Weighted: weighted[j]}
	}
	return out
}

func bestTier(tiers uint8) Tier {
	for t := Tier(0); t < numTiers; t++ {
		if tiers&(1<<t) != 0 {
			return t
		}
	}
	return TierOther
}

// Known reports whether the index has seen events from the pod since it
// was added or last resynchronised.
func (x *Index) Known(name string) bool {
	x.mu.RLock()
	p := x.pods[name]
	x.mu.RUnlock()
	return p != nil && p.synced.Load()
}

// BlockSize is the block size the pod reported in its events (0: none yet).
func (x *Index) BlockSize(name string) int {
	x.mu.RLock()
	p := x.pods[name]
	x.mu.RUnlock()
	if p == nil {
		return 0
	}
	return int(p.blockSize.Load())
}

// PodSize is the number of blocks held for one pod.
func (x *Index) PodSize(name string) int {
	x.mu.RLock()
	p := x.pods[name]
	x.mu.RUnlock()
	if p == nil {
		return 0
	}
	return int(p.size.Load())
}

// Pods lists the pods the index tracks.
func (x *Index) Pods() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.pods))
	for k := range x.pods {
		out = append(out, k)
	}
	return out
}

// AddPod starts tracking a pod (idempotent) and returns its writer. Events
// for the pod must be applied through that writer by one goroutine.
func (x *Index) AddPod(name string) *Writer {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p := x.pods[name]; p != nil {
		return &Writer{x: x, p: p}
	}
	x.nextID++
	p := &pod{name: name, id: x.nextID, blocks: map[uint64]podBlock{}}
	x.pods[name] = p
	x.byID[p.id] = p
	return &Writer{x: x, p: p}
}

// RemovePod drops everything the pod held.
func (x *Index) RemovePod(name string) {
	x.mu.Lock()
	p := x.pods[name]
	delete(x.pods, name)
	if p != nil {
		delete(x.byID, p.id)
	}
	x.mu.Unlock()
	if p != nil {
		p.mu.Lock()
		x.clearPod(p)
		p.removed = true
		p.mu.Unlock()
	}
}

// knownBlockSize is the pod's block size when the index vouches for its
// state (events seen since the last resynchronisation), else 0.
func (x *Index) knownBlockSize(name string) int {
	x.mu.RLock()
	p := x.pods[name]
	x.mu.RUnlock()
	if p == nil || !p.synced.Load() {
		return 0
	}
	return int(p.blockSize.Load())
}
