package sim

import (
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func chatBody(extra map[string]any) map[string]any {
	b := map[string]any{"model": DefaultModel, "max_tokens": 6, "ignore_eos": true,
		"messages": []map[string]string{{"role": "user", "content": "disaggregate this prompt please, it is long enough to span blocks of sixteen tokens"}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func TestVLLMKVTransferHandshake(t *testing.T) {
	// Hold the prefilled KV for an hour of simulated time (18 s of wall
	// time here) so a slow machine cannot expire it mid-test.
	f := startFleet(t, fastConfig(func(c *Config) { c.KVRole = RolePrefill; c.KVTransferTimeout = time.Hour }),
		fastConfig(func(c *Config) { c.KVRole = RoleDecode }))
	prefill, decode := f.URL(0)+"/v1/chat/completions", f.URL(1)+"/v1/chat/completions"

	// 1. prefill with do_remote_decode, max_tokens=1, as the router does.
	status, resp := postJSON(t, prefill, chatBody(map[string]any{"max_tokens": 1,
		"kv_transfer_params": map[string]any{"do_remote_decode": true, "do_remote_prefill": false}}))
	require.Equal(t, 200, status, "%v", resp)
	params, ok := resp["kv_transfer_params"].(map[string]any)
	require.True(t, ok, "prefill returns kv_transfer_params")
	assert.Equal(t, true, params["do_remote_prefill"])
	assert.NotEmpty(t, params["remote_block_ids"])
	assert.NotEmpty(t, params["remote_engine_id"])
	assert.Equal(t, "127.0.0.1", params["remote_host"])
	assert.Equal(t, 1, f.Engines[0].Stats().Held, "prefill holds the KV for the decode side")

	// 2. decode consumes them: no prompt recompute, full output.
	status, out := postJSON(t, decode, chatBody(map[string]any{"kv_transfer_params": params}))
	require.Equal(t, 200, status, "%v", out)
	u := out["usage"].(map[string]any)
	assert.Equal(t, 6.0, u["completion_tokens"])
	assert.Zero(t, f.Engines[0].Stats().Held, "the pull released the prefill's blocks")
	fams := scrape(t, f.URL(1))
	prefilled := value(t, fams, "vllm:prompt_tokens_total")
	assert.Zero(t, prefilled, "decode recomputes none of the prompt: its KV came from the prefill engine")
	ttft := value(t, fams, "vllm:time_to_first_token_seconds")
	prof := f.Engines[1].Profile()
	assert.GreaterOrEqual(t, ttft, prof.KVTransferTime(int(u["prompt_tokens"].(float64))).Seconds(),
		"decode TTFT includes the modelled KV transfer")

	// 3. reusing the same params finds no KV to pull: under the default
	// recompute policy the decode engine prefills the prompt itself.
	status, again := postJSON(t, decode, chatBody(map[string]any{"kv_transfer_params": params}))
	require.Equal(t, 200, status, "%v", again)
	assert.Equal(t, 6.0, again["usage"].(map[string]any)["completion_tokens"])
	assert.Positive(t, value(t, scrape(t, f.URL(1)), "vllm:prompt_tokens_total"),
		"the failed load was recomputed locally (beyond the blocks the first pull left in its prefix cache)")

	// 4. misuse: missing fields, wrong role.
	status, bad := postJSON(t, decode, chatBody(map[string]any{"kv_transfer_params": map[string]any{"do_remote_prefill": true}}))
	assert.Equal(t, 400, status)
	assert.Contains(t, bad["error"].(map[string]any)["message"], "remote_host")
	status, bad = postJSON(t, decode, chatBody(map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}))
	assert.Equal(t, 400, status)
	assert.Contains(t, bad["error"].(map[string]any)["message"], "kv-role decode")
}

func TestKVLoadFailurePolicyFail(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) { c.KVRole = RoleDecode; c.KVLoadFailurePolicy = KVLoadFail }))
	dead := map[string]any{"do_remote_prefill": true, "remote_host": "127.0.0.1", "remote_port": 1,
		"remote_engine_id": "x", "remote_block_ids": []int{1}}
	status, bad := postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(map[string]any{"kv_transfer_params": dead}))
	assert.Equal(t, 500, status, "a failed load is the pair's fault: a status the router retries elsewhere")
	assert.Contains(t, bad["error"].(map[string]any)["message"], "KV transfer from 127.0.0.1:1 failed")
	assert.Equal(t, 1.0, value(t, scrape(t, f.URL(0)), "kthena_sim:kv_transfer_failures_total"))
}

func TestSGLangBootstrapHandshake(t *testing.T) {
	f := startFleet(t,
		// Rooms wait 200 s of simulated time (1 s of wall time) for a prefill.
		fastConfig(func(c *Config) { c.Engine = SGLang; c.KVRole = RolePrefill; c.KVTransferTimeout = 200 * time.Second }),
		fastConfig(func(c *Config) { c.Engine = SGLang; c.KVRole = RoleDecode }))
	host, portStr, err := net.SplitHostPort(f.Addrs[0])
	require.NoError(t, err)
	port, _ := strconv.Atoi(portStr)
	pd := map[string]any{"bootstrap_host": host, "bootstrap_port": port, "bootstrap_room": 4242}

	// Router sends both at once; decode waits on the prefill's room.
	var wg sync.WaitGroup
	var pStatus int
	wg.Add(1)
	go func() {
		defer wg.Done()
		pStatus, _ = postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(pd))
	}()
	status, out := postJSON(t, f.URL(1)+"/v1/chat/completions", chatBody(pd))
	wg.Wait()
	require.Equal(t, 200, pStatus)
	require.Equal(t, 200, status, "%v", out)
	assert.Equal(t, 6.0, out["usage"].(map[string]any)["completion_tokens"])

	// Misuse: decode without a room, and a room nobody prefills.
	status, bad := postJSON(t, f.URL(1)+"/v1/chat/completions", chatBody(nil))
	assert.Equal(t, 400, status)
	assert.Contains(t, bad["message"], "bootstrap_room")
	orphan := map[string]any{"bootstrap_host": host, "bootstrap_port": port, "bootstrap_room": 7}
	status, bad = postJSON(t, f.URL(1)+"/v1/chat/completions", chatBody(orphan))
	assert.Equal(t, 502, status)
	assert.Contains(t, bad["message"], "no prefill arrived")
	status, bad = postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(nil))
	assert.Equal(t, 400, status)
	assert.Contains(t, bad["message"], "prefill disaggregation mode")
}
