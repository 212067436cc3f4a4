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
