package sim

import (
	"sync"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/sim/perfmodel"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// below counts the observations of a histogram at or under bound.
func below(t *testing.T, fams map[string]*dto.MetricFamily, name string, bound float64) uint64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "metric %s exposed", name)
	for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
		if b.GetUpperBound() == bound {
			return b.GetCumulativeCount()
		}
	}
	t.Fatalf("%s has no bucket %g", name, bound)
	return 0
}

func histMean(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	return value(t, fams, name) / float64(histCount(t, fams, name))
}

// TestDisaggregationRemovesPrefillStallsFromITL is the shape of llm-d's
// GPU comparison on the h100 profile: a stream of 5,000-token prompts with
// 250 output tokens, served by one aggregated engine and by one prefill
// plus one decode engine. In the aggregated engine every arriving prompt is
// prefilled in a step that the running streams wait for (ITL spikes of a
// prefill's length); on the decode engine the KV arrives off the batch and
// every inter-token gap is a pure decode step. All quantities are simulated
// seconds, and the assertions are structural (no gap above a bound, spikes
// present) plus a loose ratio, so host load does not decide them.
func TestDisaggregationRemovesPrefillStallsFromITL(t *testing.T) {
	const (
		n       = 16
		prompt  = 5000
		output  = 250
		gap     = 200 * time.Millisecond // simulated, between arrivals
		scale   = 0.05
		timeout = time.Hour
	)
	cfg := func(role KVRole) Config {
		return Config{TimeScale: scale, Mode: ModeEcho, KVRole: role, KVTransferTimeout: timeout}
	}
	send := func(do func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); do(i) }()
			time.Sleep(time.Duration(float64(gap) * scale))
		}
		wg.Wait()
	}

	agg := startFleet(t, cfg(RoleBoth))
	send(func(i int) {
		status, out := postJSON(t, agg.URL(0)+"/v1/completions", completion(promptIDs(prompt, i), output, nil))
		assert.Equal(t, 200, status, "%v", out)
	})

	pd := startFleet(t, cfg(RolePrefill), cfg(RoleDecode))
	send(func(i int) {
		ids := promptIDs(prompt, 100+i)
		status, resp := postJSON(t, pd.URL(0)+"/v1/completions", completion(ids, 1,
			map[string]any{"kv_transfer_params": map[string]any{"do_remote_decode": true}}))
		if !assert.Equal(t, 200, status, "%v", resp) {
			return
		}
		status, out := postJSON(t, pd.URL(1)+"/v1/completions", completion(ids, output,
			map[string]any{"kv_transfer_params": resp["kv_transfer_params"]}))
		assert.Equal(t, 200, status, "%v", out)
	})

	a, p, d := scrape(t, agg.URL(0)), scrape(t, pd.URL(0)), scrape(t, pd.URL(1))
	const itl = "vllm:inter_token_latency_seconds"
	const ttft = "vllm:time_to_first_token_seconds"
	require.Equal(t, uint64(n*(output-1)), histCount(t, a, itl))
	require.Equal(t, uint64(n*(output-1)), histCount(t, d, itl))
	assert.Zero(t, histCount(t, p, itl), "the prefill engine decodes nothing beyond the first token")

	prof, err := perfmodel.Builtin().Lookup(perfmodel.DefaultProfile)
	require.NoError(t, err)
	minStep := prof.StepTime(perfmodel.Batch{DecodeSeqs: 1, DecodeContext: prompt}).Seconds()
	maxStep := prof.StepTime(perfmodel.Batch{DecodeSeqs: n, DecodeContext: n * (prompt + output)}).Seconds()
	prefillStep := prof.PrefillTime(0, prompt, 8192).Seconds()

	aMean, dMean := histMean(t, a, itl), histMean(t, d, itl)
	aSpikes := histCount(t, a, itl) - below(t, a, itl, 0.1)
	t.Logf("ITL mean: aggregated %.1f ms (%d gaps > 100 ms), decode engine %.1f ms; pure decode step %.1f-%.1f ms, prefill step %.0f ms",
		aMean*1e3, aSpikes, dMean*1e3, minStep*1e3, maxStep*1e3, prefillStep*1e3)
	t.Logf("TTFT mean: aggregated %.0f ms; prefill engine %.0f ms + decode engine %.0f ms (KV transfer %.0f ms)",
		histMean(t, a, ttft)*1e3, histMean(t, p, ttft)*1e3, histMean(t, d, ttft)*1e3, prof.KVTransferTime(prompt).Seconds()*1e3)

	// Decode engine: every gap is a decode step of its batch.
	assert.Equal(t, histCount(t, d, itl), below(t, d, itl, 0.025), "no decode-side gap beyond a pure decode step")
	assert.GreaterOrEqual(t, dMean, minStep*0.99)
	assert.LessOrEqual(t, dMean, maxStep*1.01)
	// Aggregated: arrivals during decoding stall the batch for a prefill.
	// (Counted, not compared as means: how many arrivals land during
	// decoding depends on the machine's load, and the means with it.)
	assert.GreaterOrEqual(t, aSpikes, uint64(3), "prefills interleaved with decoding stall the running streams")
	// The decode side's TTFT includes the transfer of the prompt's KV.
	assert.GreaterOrEqual(t, histMean(t, d, ttft), prof.KVTransferTime(prompt).Seconds())
}
