package sim

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// promptIDs is a prompt of n token IDs, distinct per seed.
func promptIDs(n, seed int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1000 + (seed*7919+i*31)%90000
	}
	return out
}

func completion(ids []int, maxTokens int, extra map[string]any) map[string]any {
	b := map[string]any{"model": DefaultModel, "prompt": ids, "max_tokens": maxTokens, "ignore_eos": true}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func cachedTokens(t *testing.T, resp map[string]any) float64 {
	t.Helper()
	u, ok := resp["usage"].(map[string]any)
	require.True(t, ok, "usage in %v", resp)
	d, _ := u["prompt_tokens_details"].(map[string]any)
	v, _ := d["cached_tokens"].(float64)
	return v
}

// Under load a prefill engine's held KV fills its cache: later prefills
// wait (counted as waiting, KV usage near 1, held blocks reported) until a
// decode engine pulls the KV, which frees the blocks. A plain request is
// served as vLLM serves it. (Nothing here depends on wall-clock time: the
// holds do not expire during the test; TestHeldKVExpires covers expiry.)
func TestPrefillHoldsKVUnderLoad(t *testing.T) {
	// 200 blocks; each 950-token prompt holds 60.
	f := startFleet(t,
		fastConfig(func(c *Config) { c.KVRole = RolePrefill; c.KVCacheSize = 200; c.KVTransferTimeout = 100 * time.Hour }),
		fastConfig(func(c *Config) { c.KVRole = RoleDecode }))
	url := f.URL(0) + "/v1/completions"
	prefill := map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}
	var held []map[string]any
	var prompts [][]int
	for i := range 3 {
		p := promptIDs(950, i)
		status, resp := postJSON(t, url, completion(p, 1, prefill))
		require.Equal(t, 200, status, "%v", resp)
		held = append(held, resp["kv_transfer_params"].(map[string]any))
		prompts = append(prompts, p)
	}
	fams := scrape(t, f.URL(0))
	assert.Equal(t, 180.0, value(t, fams, "kthena_sim:kv_held_blocks"))
	assert.Equal(t, 3.0, value(t, fams, "kthena_sim:kv_held_requests"))
	assert.InDelta(t, 0.9, value(t, fams, "vllm:kv_cache_usage_perc"), 1e-9, "held blocks count as used")

	done := make(chan int, 1)
	go func() {
		status, _ := postJSON(t, url, completion(promptIDs(950, 9), 1, prefill))
		done <- status
	}()
	require.Eventually(t, func() bool { return f.Engines[0].Stats().Waiting == 1 }, 10*time.Second, time.Millisecond,
		"the fourth prefill waits for blocks")
	// The gauges are set when the engine's step reports its state, just after
	// the core counts the request as waiting.
	require.Eventually(t, func() bool { return value(t, scrape(t, f.URL(0)), "vllm:num_requests_waiting") == 1 },
		10*time.Second, time.Millisecond, "vllm:num_requests_waiting shows the waiting prefill")
	select {
	case <-done:
		t.Fatal("the fourth prefill ran while the cache was full of held KV")
	case <-time.After(50 * time.Millisecond):
	}
	// The decode engine pulls the first prompt's KV: its blocks are free
	// and the waiting prefill runs.
	status, out := postJSON(t, f.URL(1)+"/v1/completions", completion(prompts[0], 2, map[string]any{"kv_transfer_params": held[0]}))
	require.Equal(t, 200, status, "%v", out)
	select {
	case status := <-done:
		assert.Equal(t, 200, status, "admitted once the pulled KV was released")
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting prefill never ran")
	}

	// A plain request is served normally: the prompt and all its tokens.
	status, resp := postJSON(t, url, completion(promptIDs(100, 50), 5, nil))
	require.Equal(t, 200, status, "%v", resp)
	assert.Equal(t, 5.0, resp["usage"].(map[string]any)["completion_tokens"])
	assert.Nil(t, resp["kv_transfer_params"])
}

// Unclaimed KV expires (vLLM's abort timeout): the blocks come back and
// the expiry is counted.
func TestHeldKVExpires(t *testing.T) {
	// 2 simulated seconds: 10 ms of wall time.
	f := startFleet(t, fastConfig(func(c *Config) { c.KVRole = RolePrefill; c.KVTransferTimeout = 2 * time.Second }))
	prefill := map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}
	status, resp := postJSON(t, f.URL(0)+"/v1/completions", completion(promptIDs(500, 1), 1, prefill))
	require.Equal(t, 200, status, "%v", resp)
	require.Eventually(t, func() bool {
		return f.Engines[0].Stats().Held == 0 && value(t, scrape(t, f.URL(0)), "vllm:nixl_num_kv_expired_reqs_total") == 1
	}, 20*time.Second, 5*time.Millisecond, "the held KV expires and is counted")
	assert.Zero(t, value(t, scrape(t, f.URL(0)), "kthena_sim:kv_held_blocks"))
}

// After a transfer the decode engine has the prompt in its prefix cache:
// a plain follow-up (the router skipping remote prefill because the
// prompt is mostly cached there) prefills only its new tail, and a second
// transfer for a prompt sharing that prefix moves only the rest.
func TestDecodeCachesReceivedKVAndServesPlainRequests(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) { c.KVRole = RolePrefill; c.KVTransferTimeout = time.Hour }),
		fastConfig(func(c *Config) { c.KVRole = RoleDecode }))
	pURL, dURL := f.URL(0)+"/v1/completions", f.URL(1)+"/v1/completions"
	base := promptIDs(2000, 1)

	status, resp := postJSON(t, pURL, completion(base, 1, map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}))
	require.Equal(t, 200, status, "%v", resp)
	status, out := postJSON(t, dURL, completion(base, 8, map[string]any{"kv_transfer_params": resp["kv_transfer_params"]}))
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 1999.0, cachedTokens(t, out), "all but the last token arrived from the prefill engine")
	fams := scrape(t, f.URL(1))
	assert.Zero(t, value(t, fams, "vllm:prompt_tokens_total"))
	assert.Equal(t, 2000.0, value(t, fams, "kthena_sim:kv_transferred_tokens_total"))
	assert.Equal(t, uint64(1), histCount(t, fams, "vllm:nixl_xfer_time_seconds"))
	assert.Equal(t, 2000*f.Engines[1].Profile().Model.KVBytesPerToken(), value(t, fams, "vllm:nixl_bytes_transferred"))
	assert.Equal(t, 1999.0, value(t, fams, "vllm:external_prefix_cache_hits_total"))

	// A plain request extending the prompt: local prefill of the tail.
	longer := append(append([]int{}, base...), promptIDs(300, 2)...)
	status, out = postJSON(t, dURL, completion(longer, 4, nil))
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 2000.0, cachedTokens(t, out), "the received blocks were cached")
	assert.Equal(t, 300.0, value(t, scrape(t, f.URL(1)), "vllm:prompt_tokens_total"), "only the uncached tail is prefilled")

	// Another remote prefill of a prompt sharing the cached prefix: only
	// the blocks the decode engine lacks are transferred.
	other := append(append([]int{}, base...), promptIDs(500, 3)...)
	status, resp = postJSON(t, pURL, completion(other, 1, map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}))
	require.Equal(t, 200, status, "%v", resp)
	status, out = postJSON(t, dURL, completion(other, 4, map[string]any{"kv_transfer_params": resp["kv_transfer_params"]}))
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 2500.0, value(t, scrape(t, f.URL(1)), "kthena_sim:kv_transferred_tokens_total"))
}

// The router's lmcache connector: a plain max_tokens=1 request to the
// prefill engine saves the prompt's KV in the shared store; the plain
// request to the decode engine loads the stored chunks and prefills the
// rest. Without a shared store (the http connector) the decode engine
// recomputes the prompt.
func TestLMCacheConnectorSharesPromptKV(t *testing.T) {
	store := httptest.NewServer(NewLMCacheServer())
	t.Cleanup(store.Close)
	lm := func(role KVRole) Config {
		return fastConfig(func(c *Config) { c.KVRole = role; c.KVConnector = ConnectorLMCache; c.LMCacheURL = store.URL })
	}
	f := startFleet(t, lm(RolePrefill), lm(RoleDecode),
		fastConfig(func(c *Config) { c.KVRole = RoleDecode; c.KVConnector = ConnectorNone }))
	prompt := promptIDs(3000, 4) // 11 full chunks of 256 tokens: 2816

	status, resp := postJSON(t, f.URL(0)+"/v1/completions", completion(prompt, 1, nil))
	require.Equal(t, 200, status, "%v", resp)
	assert.Equal(t, 2816.0, value(t, scrape(t, f.URL(0)), "kthena_sim:lmcache_stored_tokens_total"))

	status, out := postJSON(t, f.URL(1)+"/v1/completions", completion(prompt, 6, nil))
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 6.0, out["usage"].(map[string]any)["completion_tokens"])
	assert.Equal(t, 2816.0, cachedTokens(t, out), "the stored chunks were loaded")
	fams := scrape(t, f.URL(1))
	assert.Equal(t, 3000.0-2816, value(t, fams, "vllm:prompt_tokens_total"), "only the part past the last stored chunk is prefilled")
	assert.Equal(t, 2816.0, value(t, fams, "vllm:external_prefix_cache_hits_total"))
	assert.Equal(t, 3000.0, value(t, fams, "vllm:external_prefix_cache_queries_total"))
	prof := f.Engines[1].Profile()
	assert.GreaterOrEqual(t, value(t, fams, "vllm:time_to_first_token_seconds"), prof.KVTransferTime(2816).Seconds(),
		"the load is part of TTFT")
	assert.NotContains(t, fams, "vllm:nixl_xfer_time_seconds", "no NIXL metrics without the nixl connector")

	// A second request with the same prompt: now in the local cache, no load.
	status, out = postJSON(t, f.URL(1)+"/v1/completions", completion(prompt, 2, nil))
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 2992.0, cachedTokens(t, out))
	assert.Equal(t, 1.0, value(t, scrape(t, f.URL(1)), "kthena_sim:kv_transfers_total"))

	// http connector: no store, the decode engine recomputes everything.
	status, out = postJSON(t, f.URL(2)+"/v1/completions", completion(prompt, 2, nil))
	require.Equal(t, 200, status, "%v", out)
	assert.Zero(t, cachedTokens(t, out))
	assert.Equal(t, 3000.0, value(t, scrape(t, f.URL(2)), "vllm:prompt_tokens_total"))
}

func TestLMCacheUnreachableStoreRecomputes(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) {
		c.KVRole = RoleDecode
		c.KVConnector = ConnectorLMCache
		c.LMCacheURL = "http://127.0.0.1:1"
	}))
	status, out := postJSON(t, f.URL(0)+"/v1/completions", completion(promptIDs(600, 5), 2, nil))
	require.Equal(t, 200, status, "%v", out)
	assert.Zero(t, cachedTokens(t, out))
	assert.Equal(t, 1.0, value(t, scrape(t, f.URL(0)), "kthena_sim:kv_transfer_failures_total"))
}
