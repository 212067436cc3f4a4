package kvindex

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kthena/kthena/internal/sim/kvevents"
)

// pod is the index's state of one engine.
type pod struct {
	name string
	id   uint32

	mu      sync.Mutex
	blocks  map[uint64]podBlock // engine hash (low 64 bits) -> block
	fifo    []uint64            // engine hashes in store order, for eviction; stale entries skipped
	head    int
	lastSeq uint64
	seenSeq bool
	removed bool

	synced    atomic.Bool
	blockSize atomic.Int32
	size      atomic.Int64
}

// podBlock is one engine block: its router key and how many copies each
// tier holds (vLLM may cache equal content twice and removes copies one by
// one).
type podBlock struct {
	key  Key
	refs [numTiers]uint16
}

func (b podBlock) tiers() uint8 {
	var t uint8
	for i, r := range b.refs {
		if r > 0 {
			t |= 1 << i
		}
	}
	return t
}

// Writer applies one pod's events. It is not safe for concurrent use.
type Writer struct {
	x   *Index
	p   *pod
	buf []byte
}

// Pod is the name of the pod the writer writes.
func (w *Writer) Pod() string { return w.p.name }

// Resync drops the pod's entries and forgets its sequence: the next batch
// starts a fresh view (after a reconnection or a restart).
func (w *Writer) Resync() {
	p := w.p
	p.mu.Lock()
	w.x.clearPod(p)
	p.seenSeq = false
	p.synced.Store(false)
	p.mu.Unlock()
}

// Apply ingests one batch with its sequence number. A gap in the sequence
// (messages dropped by ZMQ) or a sequence that went back (the engine
// restarted) drops everything the pod held before the batch is applied:
// the index then rebuilds from new events and never keeps what it can no
// longer vouch for. It returns true when it resynchronised.
func (w *Writer) Apply(seq uint64, b kvevents.Batch) bool {
	x, p := w.x, w.p
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		return false
	}
	resync := p.seenSeq && seq != p.lastSeq+1
	if resync {
		x.clearPod(p)
		x.stats.Resyncs.Add(1)
	}
	p.lastSeq, p.seenSeq = seq, true
	x.stats.Batches.Add(1)
	for _, ev := range b.Events {
		x.stats.Events.Add(1)
		switch ev := ev.(type) {
		case kvevents.BlockStored:
			w.stored(ev)
		case kvevents.BlockRemoved:
			w.removed(ev)
		case kvevents.AllBlocksCleared:
			x.stats.Cleared.Add(1)
			x.clearPod(p)
		}
	}
	p.synced.Store(true)
	p.mu.Unlock()
	if x.maxBlocks > 0 && x.entries.Load() > x.maxBlocks {
		x.evict()
	}
	if fn := x.lag.Load(); fn != nil && b.TS > 0 {
		(*fn)(time.Since(time.Unix(0, int64(b.TS*1e9))))
	}
	return resync
}

func loraKey(ev kvevents.BlockStored) string {
	if ev.LoRAName != "" {
		return ev.LoRAName
	}
	if ev.LoRAID != nil {
		// Only the adapter's engine-local id: it cannot match a request's
		// adapter name, so these blocks only ever match each other.
		return "lora-id:" + strconv.Itoa(*ev.LoRAID)
	}
	return ""
}

func (w *Writer) stored(ev kvevents.BlockStored) {
	x, p := w.x, w.p
	n := len(ev.BlockHashes)
	if n == 0 {
		return
	}
	bs := ev.BlockSize
	if bs <= 0 {
		bs = len(ev.TokenIDs) / n
	}
	if bs <= 0 || len(ev.TokenIDs) != n*bs {
		x.stats.Malformed.Add(1)
		return
	}
	p.blockSize.Store(int32(bs))
	var parent Key
	if ev.ParentBlockHash == nil {
		parent = Root(loraKey(ev))
	} else {
		pb, ok := p.blocks[ev.ParentBlockHash.Uint64()]
		if !ok {
			// The parent was stored before we listened (or was dropped):
			// the chain cannot be placed, so these blocks are left out.
			x.stats.Orphans.Add(int64(n))
			return
		}
		parent = pb.key
	}
	tier := TierOf(ev.Medium)
	if cap(w.buf) < 8+4*bs {
		w.buf = make([]byte, 0, 8+4*bs)
	}
	for i, h := range ev.BlockHashes {
		key := next(w.buf, parent, ev.TokenIDs[i*bs:(i+1)*bs])
		eh := h.Uint64()
		b, ok := p.blocks[eh]
		switch {
		case ok && b.key == key:
			before := b.tiers()
			if b.refs[tier] < ^uint16(0) {
				b.refs[tier]++
			}
			p.blocks[eh] = b
			if before&(1<<tier) == 0 {
				x.add(key, p.id, tier)
			}
		default:
			if ok { // same engine hash, other content: trust the newest
				x.setTiers(b.key, p.id, 0)
			} else {
				p.fifo = append(p.fifo, eh)
				x.entries.Add(1)
				p.size.Add(1)
			}
			nb := podBlock{key: key}
			nb.refs[tier] = 1
			p.blocks[eh] = nb
			x.add(key, p.id, tier)
		}
		x.stats.Stored.Add(1)
		parent = key
	}
}

func (w *Writer) removed(ev kvevents.BlockRemoved) {
	x, p := w.x, w.p
	tier := TierOf(ev.Medium)
	for _, h := range ev.BlockHashes {
		eh := h.Uint64()
		b, ok := p.blocks[eh]
		if !ok || b.refs[tier] == 0 {
			continue
		}
		x.stats.Removed.Add(1)
		b.refs[tier]--
		if b.refs[tier] > 0 {
			p.blocks[eh] = b
			continue
		}
		t := b.tiers()
		if t == 0 {
			delete(p.blocks, eh)
			x.entries.Add(-1)
			p.size.Add(-1)
		} else {
			p.blocks[eh] = b
		}
		x.setTiers(b.key, p.id, t)
	}
	p.compact()
}

// clearPod drops every entry of p; the caller holds p.mu.
func (x *Index) clearPod(p *pod) {
	for _, b := range p.blocks {
		x.setTiers(b.key, p.id, 0)
	}
	x.entries.Add(-int64(len(p.blocks)))
	p.size.Store(0)
	p.blocks = map[uint64]podBlock{}
	p.fifo, p.head = nil, 0
}

// compact drops stale eviction-queue entries once they dominate; the
// caller holds p.mu.
func (p *pod) compact() {
	live := len(p.fifo) - p.head
	if live < 1024 || live < 2*len(p.blocks) {
		return
	}
	seen := make(map[uint64]struct{}, len(p.blocks))
	out := make([]uint64, 0, len(p.blocks))
	for _, h := range p.fifo[p.head:] {
		if _, ok := p.blocks[h]; !ok {
			continue
		}
		if _, dup := seen[h]; dup {
			continue
		}
		seen[h] = struct{}{}
		out = append(out, h)
	}
	p.fifo, p.head = out, 0
}

// evict drops the oldest entries of the largest pods until the index is 1 %
// under its bound. One pod lock is held at a time.
func (x *Index) evict() {
	x.evictMu.Lock()
	defer x.evictMu.Unlock()
	target := x.maxBlocks - x.maxBlocks/100
	for x.entries.Load() > target {
		var big *pod
		x.mu.RLock()
		for _, p := range x.pods {
			if big == nil || p.size.Load() > big.size.Load() {
				big = p
			}
		}
		x.mu.RUnlock()
		if big == nil || big.size.Load() == 0 {
			return
		}
		big.mu.Lock()
		// Take the pod down to the next largest pod's size, at least one
		// block, at most what the bound asks.
		over := x.entries.Load() - target
		progressed := false
		for over > 0 && big.head < len(big.fifo) {
			eh := big.fifo[big.head]
			big.head++
			b, ok := big.blocks[eh]
			if !ok {
				continue
			}
			delete(big.blocks, eh)
			x.setTiers(b.key, big.id, 0)
			x.entries.Add(-1)
			big.size.Add(-1)
			x.stats.Evicted.Add(1)
			progressed = true
			over--
			if over%64 == 0 {
				break // let another pod become the largest
			}
		}
		if big.head >= len(big.fifo) {
			big.fifo, big.head = nil, 0
		}
		big.mu.Unlock()
		if !progressed {
			return // nothing evictable (cannot happen: every block is queued)
		}
	}
}
