package sim

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVLLMMetricsMoveUnderLoad(t *testing.T) {
	// 4 sequences per batch. Four long requests fill the batch; eight
	// short ones sent while they run must queue.
	f := startFleet(t, fastConfig(func(c *Config) { c.MaxNumSeqs = 4; c.KVCacheSize = 4000; c.TimeScale = 0.02 }))
	// Counters carry _total, as the real engines expose them.
	fams := scrape(t, f.URL(0))
	for _, name := range []string{"vllm:kv_cache_usage_perc", "vllm:num_requests_waiting", "vllm:num_requests_running",
		"vllm:inter_token_latency_seconds", "vllm:time_to_first_token_seconds", "vllm:e2e_request_latency_seconds",
		"vllm:request_queue_time_seconds", "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total",
		"vllm:cache_config_info", "vllm:lora_requests_info", "vllm:prompt_tokens_total", "vllm:generation_tokens_total"} {
		assert.Contains(t, fams, name)
	}
	assert.Equal(t, "4000", labelOf(fams["vllm:cache_config_info"].GetMetric()[0], "num_gpu_blocks"))

	c := client(f, 0)
	var wg sync.WaitGroup
	send := func(i, tokens int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: DefaultModel,
				Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(strings.Repeat("load ", 50+i))},
				MaxTokens: openai.Int(int64(tokens))}, option.WithJSONSet("ignore_eos", true))
			assert.NoError(t, err)
		}()
	}
	poll := func(what string, cond func(map[string]*dto.MetricFamily) bool) {
		t.Helper()
		require.Eventually(t, func() bool { return cond(scrape(t, f.URL(0))) }, 20*time.Second, 2*time.Millisecond, what)
	}
	// Each long request runs 10,000 tokens: ~73 s simulated, ~1.5 s wall.
	for i := range 4 {
		send(i, 10000)
	}
	poll("batch filled to max-num-seqs", func(m map[string]*dto.MetricFamily) bool {
		return value(t, m, "vllm:num_requests_running") == 4
	})
	for i := range 8 {
		send(4+i, 400)
	}
	poll("requests queued beyond max-num-seqs", func(m map[string]*dto.MetricFamily) bool {
		return value(t, m, "vllm:num_requests_waiting") > 0
	})
	poll("KV cache usage rose", func(m map[string]*dto.MetricFamily) bool {
		return value(t, m, "vllm:kv_cache_usage_perc") > 0.5
	})
	wg.Wait()

	fams = scrape(t, f.URL(0))
	tokens := 4*10000 + 8*400
	assert.Equal(t, uint64(12), histCount(t, fams, "vllm:e2e_request_latency_seconds"))
	assert.Equal(t, uint64(12), histCount(t, fams, "vllm:time_to_first_token_seconds"))
	assert.Equal(t, uint64(tokens-12), histCount(t, fams, "vllm:inter_token_latency_seconds"))
	assert.Equal(t, float64(tokens), value(t, fams, "vllm:generation_tokens_total"))
	assert.Greater(t, value(t, fams, "vllm:request_queue_time_seconds"), 0.0)
	assert.Zero(t, value(t, fams, "vllm:num_requests_running"))
	assert.Zero(t, value(t, fams, "vllm:kv_cache_usage_perc"))
	// Mean ITL in simulated seconds stays near the modelled decode step
	// (longer contexts make it a little slower than the idle figure),
	// whatever the time scale.
	itl := value(t, fams, "vllm:inter_token_latency_seconds") / float64(tokens-12)
	assert.InDelta(t, 0.0072, itl, 0.002)
}

func TestPrefixHitsCountedAndLowerTTFT(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	c := client(f, 0)
	system := strings.Repeat("You are a careful assistant who answers in one line. ", 150)
	ask := func(q string) {
		_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: DefaultModel,
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(system), openai.UserMessage(q)},
			MaxTokens: openai.Int(1)})
		require.NoError(t, err)
	}
	ask("first question")
	fams := scrape(t, f.URL(0))
	coldTTFT := value(t, fams, "vllm:time_to_first_token_seconds")
	assert.Zero(t, value(t, fams, "vllm:prefix_cache_hits_total"))
	queries1 := value(t, fams, "vllm:prefix_cache_queries_total")

	ask("second question")
	fams = scrape(t, f.URL(0))
	warmTTFT := value(t, fams, "vllm:time_to_first_token_seconds") - coldTTFT
	hits := value(t, fams, "vllm:prefix_cache_hits_total")
	queries2 := value(t, fams, "vllm:prefix_cache_queries_total") - queries1
	assert.Greater(t, hits, 0.9*queries2, "nearly all of the repeated prompt hit")

	// The modelled difference: prefill of the whole prompt vs of the
	// uncached tail only.
	e := f.Engines[0]
	prof := e.Profile()
	prompt := int(queries2)
	cached := int(hits)
	wantCold := prof.PrefillTime(0, int(queries1), e.Config().MaxNumBatchedTokens).Seconds()
	wantWarm := prof.PrefillTime(cached, prompt-cached, e.Config().MaxNumBatchedTokens).Seconds()
	assert.InDelta(t, wantCold, coldTTFT, 1e-6)
	assert.InDelta(t, wantWarm, warmTTFT, 1e-6)
	assert.Less(t, warmTTFT, coldTTFT/3)
}

func TestSGLangMetricNames(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) { c.Engine = SGLang }))
	c := client(f, 0)
	_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: DefaultModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello sglang")}, MaxTokens: openai.Int(5)})
	require.NoError(t, err)
	fams := scrape(t, f.URL(0))
	for _, name := range []string{"sglang:token_usage", "sglang:num_queue_reqs", "sglang:num_running_reqs",
		"sglang:inter_token_latency_seconds", "sglang:time_to_first_token_seconds", "sglang:e2e_request_latency_seconds",
		"sglang:prompt_tokens_total", "sglang:generation_tokens_total", "sglang:cache_hit_rate"} {
		assert.Contains(t, fams, name)
	}
	assert.Equal(t, uint64(1), histCount(t, fams, "sglang:time_to_first_token_seconds"))
	assert.NotContains(t, fams, "vllm:num_requests_running")
}
