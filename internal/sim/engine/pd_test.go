package engine

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A prefill engine keeps the KV of finished prefills for the decode side:
// the held blocks occupy the cache, so once they fill it new requests wait
// (they do not fail) until a pull or an expiry releases them.
func TestHeldBlocksCountAgainstCapacityUntilReleased(t *testing.T) {
	e, _ := newTestEngine(t, func(o *Options) { o.NumBlocks = 100 })
	// 60 blocks each: the first is held, the second cannot fit beside it.
	p := run(t, e, &Request{ID: "held", Prompt: tokens(950, 1), Output: tokens(1, 9), Finish: FinishLength, HoldBlocks: true})
	assert.Len(t, p.HeldBlocks, 60)
	st := e.Stats()
	assert.Equal(t, 1, st.Held)
	assert.Equal(t, 60, st.HeldBlocks)
	assert.InDelta(t, 0.6, st.KVUsage, 1e-9, "held blocks are in use")

	s, err := e.Submit(&Request{ID: "next", Prompt: tokens(950, 20000), Output: tokens(1, 9), Finish: FinishLength})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return e.Stats().Waiting == 1 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // many simulated steps: it must stay queued
	assert.Equal(t, 1, e.Stats().Waiting, "a request that does not fit beside held KV waits")

	assert.True(t, e.ReleaseHeld("held"))
	assert.False(t, e.ReleaseHeld("held"), "released once")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done, ok := s.Wait(ctx)
	require.True(t, ok)
	assert.NoError(t, done.Err)
	assert.Zero(t, e.Stats().HeldBlocks)
}

// The KV a decode engine receives enters its prefix cache, so a follow-up
// request with the same prefix computes only its own tail.
func TestReceivedKVIsCachedForFollowUps(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	prompt := tokens(2000, 5)
	p := run(t, e, &Request{ID: "remote", Prompt: prompt, Output: tokens(3, 9), Finish: FinishLength, RemotePrefill: true})
	assert.Equal(t, 1999, p.CachedTokens, "all but the last prompt token came from the prefill engine")
	assert.Zero(t, e.Stats().Totals.PromptTokens, "the decode engine computed no prompt chunk")
	assert.Equal(t, 1984, e.CachedPrefixTokens(prompt, ""), "the received blocks are in the prefix cache")

	follow := append(append([]int{}, prompt...), tokens(100, 60000)...)
	q := run(t, e, &Request{ID: "plain", Prompt: follow, Output: tokens(2, 9), Finish: FinishLength})
	assert.Equal(t, 2000, q.CachedTokens, "every full block of the received prompt")
	assert.Equal(t, int64(100), e.Stats().Totals.PromptTokens, "only the uncached tail is prefilled")
}

// KV loaded from a shared store replaces the prefill of the part it covers.
func TestExternalTokensSkipPrefill(t *testing.T) {
	e, _ := newTestEngine(t, func(o *Options) { o.ExternalCache = true })
	prompt := tokens(3000, 11)
	p := run(t, e, &Request{ID: "lm", Prompt: prompt, Output: tokens(2, 9), Finish: FinishLength, ExternalTokens: 2816})
	assert.Equal(t, 2816, p.CachedTokens)
	st := e.Stats()
	assert.Equal(t, int64(3000-2816), st.Totals.PromptTokens)
	assert.Equal(t, int64(2816), st.Totals.ExternalHits)
	assert.Zero(t, st.Totals.PrefixHits, "the local cache was cold")
}
