package kvcache

import "github.com/kthena/kthena/internal/sim/kvevents"

// BlockID indexes a physical block.
type BlockID int32

const none BlockID = -1

type block struct {
	ref        int32
	cached     bool
	hash       Hash
	prev, next BlockID // free-queue links; none when not queued
	queued     bool
}

// Manager owns the blocks of one engine. It is not safe for concurrent use:
// the engine's scheduler goroutine drives it under its own lock.
type Manager struct {
	blockSize   int
	hasher      Hasher
	caching     bool
	blocks      []block
	head, tail  BlockID // LRU free queue: evict from head, append at tail
	numFree     int
	byHash      map[Hash]BlockID
	pending     []kvevents.Event
	emitEvents  bool
	storedTotal int
}

// Options configure a Manager.
type Options struct {
	NumBlocks     int
	BlockSize     int
	PrefixCaching bool
	Hasher        Hasher
	// EmitEvents makes the manager record BlockStored/BlockRemoved events
	// for TakeEvents.
	EmitEvents bool
}

// NewManager creates a cache of NumBlocks empty blocks.
func NewManager(o Options) *Manager {
	m := &Manager{
		blockSize:  o.BlockSize,
		hasher:     o.Hasher,
		caching:    o.PrefixCaching,
		blocks:     make([]block, o.NumBlocks),
		head:       none,
		tail:       none,
		byHash:     make(map[Hash]BlockID),
		emitEvents: o.EmitEvents,
	}
	for i := range m.blocks {
		m.blocks[i].prev, m.blocks[i].next = none, none
		m.pushTail(BlockID(i))
	}
	return m
}

// Table is the block table of one sequence.
type Table struct {
	Blocks []BlockID
	// Committed counts the leading blocks that are full and hashed.
	Committed int
	// Hashes are the chained hashes of the committed blocks (and of prompt
	// blocks hashed ahead of time for prefix matching).
	Hashes []Hash
}

// BlockSize is the number of tokens per block.
func (m *Manager) BlockSize() int { return m.blockSize }

// NumBlocks is the capacity in blocks.
func (m *Manager) NumBlocks() int { return len(m.blocks) }

// NumFree counts blocks not referenced by any sequence (cached or empty).
func (m *Manager) NumFree() int { return m.numFree }

// Usage is the fraction of blocks referenced by running sequences, the
// quantity vLLM reports as kv_cache_usage_perc.
func (m *Manager) Usage() float64 {
	if len(m.blocks) == 0 {
		return 0
	}
	return 1 - float64(m.numFree)/float64(len(m.blocks))
}

// Hasher returns the block hasher.
func (m *Manager) Hasher() Hasher { return m.hasher }

// MatchPrefix counts the leading hashes present in the cache.
func (m *Manager) MatchPrefix(hashes []Hash) int {
	if !m.caching {
		return 0
	}
	n := 0
	for _, h := range hashes {
		if _, ok := m.byHash[h]; !ok {
			break
		}
		n++
	}
	return n
}

// AcquirePrefix takes references on the first n cached blocks of hashes and
// records them as the table's committed prefix. Call it on an empty table
// with n from MatchPrefix.
func (m *Manager) AcquirePrefix(t *Table, hashes []Hash, n int) {
	for _, h := range hashes[:n] {
		id := m.byHash[h]
		b := &m.blocks[id]
		if b.ref == 0 {
			m.unlink(id)
		}
		b.ref++
		t.Blocks = append(t.Blocks, id)
	}
	t.Committed = n
	if len(t.Hashes) < n {
		t.Hashes = append(t.Hashes[:0], hashes[:n]...)
	}
}

// Grow allocates blocks so the table holds tokens tokens. It evicts the
// least recently used free blocks, and fails without side effects when too
// few blocks are free.
func (m *Manager) Grow(t *Table, tokens int) bool {
	need := (tokens+m.blockSize-1)/m.blockSize - len(t.Blocks)
	if need <= 0 {
		return true
	}
	if need > m.numFree {
		return false
	}
	var removed []kvevents.BlockHash
	for i := 0; i < need; i++ {
		id := m.head
		m.unlink(id)
		b := &m.blocks[id]
		if b.cached {
			delete(m.byHash, b.hash)
			b.cached = false
			if m.emitEvents {
				removed = append(removed, hashBytes(b.hash))
			}
		}
		b.ref = 1
		t.Blocks = append(t.Blocks, id)
	}
	if len(removed) > 0 {
		m.pending = append(m.pending, kvevents.BlockRemoved{BlockHashes: removed, Medium: kvevents.MediumGPU})
	}
	return true
}

// Commit hashes and caches the full blocks among the first computed tokens
// of the sequence. tokenAt returns the i-th token of the sequence (prompt
// then output); extra is the block hash extra key (LoRA name) or nil.
func (m *Manager) Commit(t *Table, computed int, tokenAt func(int) int, extra []string, loraName string) {
	full := min(computed/m.blockSize, len(t.Blocks))
	if !m.caching || full <= t.Committed {
		if full > t.Committed {
			t.Committed = full
		}
		return
	}
	var stored *kvevents.BlockStored
	tokens := make([]int, m.blockSize)
	for i := t.Committed; i < full; i++ {
		parent := m.hasher.Root()
		if i > 0 {
			parent = t.Hashes[i-1]
		}
		var h Hash
		if i < len(t.Hashes) {
			h = t.Hashes[i]
		} else {
			for j := range tokens {
				tokens[j] = tokenAt(i*m.blockSize + j)
			}
			h = m.hasher.Block(parent, tokens, extra)
			t.Hashes = append(t.Hashes, h)
		}
		id := t.Blocks[i]
		b := &m.blocks[id]
		if _, dup := m.byHash[h]; dup || b.cached {
			// Another sequence cached the same content first: keep this
			// copy private. The event's blocks must stay one chain (each
			// block's parent is the previous one, the first's is
			// ParentBlockHash), so a skipped block ends the event and the
			// next stored block starts another with its own parent.
			if stored != nil {
				m.pending = append(m.pending, *stored)
				stored = nil
			}
			continue
		}
		b.cached, b.hash = true, h
		m.byHash[h] = id
		m.storedTotal++
		if !m.emitEvents {
			continue
		}
		if stored == nil {
			stored = &kvevents.BlockStored{BlockSize: m.blockSize, Medium: kvevents.MediumGPU, LoRAName: loraName}
			if i > 0 {
				stored.ParentBlockHash = hashBytes(parent)
			}
		}
		stored.BlockHashes = append(stored.BlockHashes, hashBytes(h))
		for j := 0; j < m.blockSize; j++ {
			stored.TokenIDs = append(stored.TokenIDs, tokenAt(i*m.blockSize+j))
		}
	}
	t.Committed = full
	if stored != nil {
		m.pending = append(m.pending, *stored)
	}
}

// Release drops the table's references. Blocks whose count reaches zero
// join the free queue tail-first, so a sequence's last blocks are evicted
// before its shared prefix.
func (m *Manager) Release(t *Table) {
	for i := len(t.Blocks) - 1; i >= 0; i-- {
		id := t.Blocks[i]
		b := &m.blocks[id]
		b.ref--
		if b.ref == 0 {
			if !b.cached {
				// Empty blocks go to the front: reuse them before evicting
				// anything cached.
				m.pushHead(id)
			} else {
				m.pushTail(id)
			}
		}
	}
	t.Blocks = t.Blocks[:0]
	t.Committed = 0
}

// Reset drops every cached entry of free blocks (vLLM's reset_prefix_cache).
// It only succeeds when no sequence holds blocks.
func (m *Manager) Reset() bool {
	if m.numFree != len(m.blocks) {
		return false
	}
	for id := range m.blocks {
		b := &m.blocks[id]
		if b.cached {
			delete(m.byHash, b.hash)
			b.cached = false
		}
	}
	if m.emitEvents {
		m.pending = append(m.pending, kvevents.AllBlocksCleared{})
	}
	return true
}

// TakeEvents returns and clears the events recorded since the last call.
func (m *Manager) TakeEvents() []kvevents.Event {
	ev := m.pending
	m.pending = nil
	return ev
}

func hashBytes(h Hash) kvevents.BlockHash {
	b := make(kvevents.BlockHash, len(h))
	copy(b, h[:])
	return b
}

func (m *Manager) pushTail(id BlockID) {
	b := &m.blocks[id]
	b.prev, b.next, b.queued = m.tail, none, true
	if m.tail != none {
		m.blocks[m.tail].next = id
	} else {
		m.head = id
	}
	m.tail = id
	m.numFree++
}

func (m *Manager) pushHead(id BlockID) {
	b := &m.blocks[id]
	b.prev, b.next, b.queued = none, m.head, true
	if m.head != none {
		m.blocks[m.head].prev = id
	} else {
		m.tail = id
	}
	m.head = id
	m.numFree++
}

func (m *Manager) unlink(id BlockID) {
	b := &m.blocks[id]
	if !b.queued {
		return
	}
	if b.prev != none {
		m.blocks[b.prev].next = b.next
	} else {
		m.head = b.next
	}
	if b.next != none {
		m.blocks[b.next].prev = b.prev
	} else {
		m.tail = b.prev
	}
	b.prev, b.next, b.queued = none, none, false
	m.numFree--
}
