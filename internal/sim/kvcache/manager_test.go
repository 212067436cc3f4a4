package kvcache

import (
	"crypto/sha256"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hand-rolled CBOR must equal a canonical CBOR library's bytes, or the
// hashes would not match a real engine's.
func TestHashMatchesCanonicalCBOR(t *testing.T) {
	em, err := cbor.CoreDetEncOptions().EncMode()
	require.NoError(t, err)
	seed, err := em.Marshal(DefaultSeed)
	require.NoError(t, err)
	root := Hash(sha256.Sum256(seed))
	h := NewHasher("")
	assert.Equal(t, root, h.Root())

	tokens := []int{0, 23, 24, 255, 256, 65535, 65536, 128009, -1}
	for _, extra := range [][]string{nil, {"sql-lora"}} {
		var extraVal any
		if extra != nil {
			extraVal = extra
		}
		want, err := em.Marshal([]any{root[:], tokens, extraVal})
		require.NoError(t, err)
		assert.Equal(t, Hash(sha256.Sum256(want)), h.Block(root, tokens, extra))
	}
}

func seq(n, base int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = base + i
	}
	return out
}

func TestPrefixHitAfterRelease(t *testing.T) {
	m := NewManager(Options{NumBlocks: 8, BlockSize: 4, PrefixCaching: true, Hasher: NewHasher(""), EmitEvents: true})
	prompt := seq(10, 100)
	hashes := m.Hasher().Chain(prompt, 4, nil)
	require.Len(t, hashes, 2)
	assert.Zero(t, m.MatchPrefix(hashes))

	var a Table
	require.True(t, m.Grow(&a, len(prompt)))
	assert.Equal(t, 3, len(a.Blocks))
	m.Commit(&a, len(prompt), func(i int) int { return prompt[i] }, nil, "")
	assert.InDelta(t, 3.0/8, m.Usage(), 1e-9)
	ev := m.TakeEvents()
	require.Len(t, ev, 1)
	stored := ev[0].(kvevents.BlockStored)
	assert.Len(t, stored.BlockHashes, 2)
	assert.Nil(t, stored.ParentBlockHash)
	assert.Equal(t, prompt[:8], stored.TokenIDs)

	m.Release(&a)
	assert.Zero(t, m.Usage())
	assert.Equal(t, 2, m.MatchPrefix(hashes), "released blocks stay cached")

	var b Table
	m.AcquirePrefix(&b, hashes, 2)
	require.True(t, m.Grow(&b, len(prompt)))
	assert.Equal(t, a.Blocks[:0], b.Blocks[:0])
	assert.Equal(t, 3, len(b.Blocks))
	assert.Empty(t, m.TakeEvents(), "a hit stores nothing new")
}

func TestLRUEvictionEmitsBlockRemoved(t *testing.T) {
	m := NewManager(Options{NumBlocks: 4, BlockSize: 2, PrefixCaching: true, Hasher: NewHasher(""), EmitEvents: true})
	first := seq(4, 1)
	var a Table
	require.True(t, m.Grow(&a, 4))
	m.Commit(&a, 4, func(i int) int { return first[i] }, nil, "")
	m.Release(&a)
	m.TakeEvents()

	// Four new blocks need every block, so both cached ones are evicted.
	var b Table
	require.True(t, m.Grow(&b, 8))
	var removed int
	for _, e := range m.TakeEvents() {
		if r, ok := e.(kvevents.BlockRemoved); ok {
			removed += len(r.BlockHashes)
		}
	}
	assert.Equal(t, 2, removed)
	assert.Zero(t, m.MatchPrefix(m.Hasher().Chain(first, 2, nil)))
	assert.False(t, m.Grow(&b, 10), "full cache refuses more")
	assert.Len(t, b.Blocks, 4, "failed grow has no side effect")
}

func TestLoRANameChangesHashes(t *testing.T) {
	h := NewHasher("")
	p := seq(32, 7)
	assert.NotEqual(t, h.Chain(p, 16, nil), h.Chain(p, 16, []string{"a"}))
	assert.NotEqual(t, h.Chain(p, 16, nil), NewHasher("42").Chain(p, 16, nil))
}

// Every BlockStored must be one chain, as vLLM's are: block i's parent is
// block i-1 and the first block's is ParentBlockHash (the root when nil), so
// a consumer can recompute every hash from the event alone. A block skipped
// in the middle of a commit (its content cached by another sequence) used to
// leave the next block chained to the wrong parent.
func TestStoredEventsAreChains(t *testing.T) {
	const bs = 4
	m := NewManager(Options{NumBlocks: 8, BlockSize: bs, PrefixCaching: true, Hasher: NewHasher(""), EmitEvents: true})
	p := seq(13, 100)
	at := func(i int) int { return p[i] }
	var x, a, f, b Table
	require.True(t, m.Grow(&x, 5))
	require.True(t, m.Grow(&a, 9))
	m.Commit(&x, 5, at, nil, "") // x caches block 0
	m.Commit(&a, 9, at, nil, "") // a's block 0 stays private, block 1 is cached
	m.Release(&x)
	require.True(t, m.Grow(&f, 5*bs)) // evicts x's block 0
	m.Release(&f)
	require.True(t, m.Grow(&b, 13))
	m.Commit(&b, 13, at, nil, "") // block 0 new, block 1 held by a, block 2 new

	h := m.Hasher()
	var stored int
	for _, ev := range m.TakeEvents() {
		s, ok := ev.(kvevents.BlockStored)
		if !ok {
			continue
		}
		parent := h.Root()
		if s.ParentBlockHash != nil {
			copy(parent[:], s.ParentBlockHash)
		}
		for i, got := range s.BlockHashes {
			want := h.Block(parent, s.TokenIDs[i*bs:(i+1)*bs], nil)
			require.Equal(t, want[:], []byte(got), "event %+v block %d", s, i)
			parent = want
			stored++
		}
	}
	assert.Equal(t, 4, stored, "x: 1, a: 1, b: 2")
}
