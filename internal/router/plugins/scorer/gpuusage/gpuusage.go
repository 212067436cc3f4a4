// Package gpuusage scores engines by free KV cache: 1 − kv_cache_usage,
// with the usage brought up to date by what this router sent and saw end
// since the scrape.
package gpuusage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "gpu-usage"

// defaultPerRequest is the KV share one request is taken to hold when no
// engine runs any (a 1,000-token prompt on an 8B model on one H100 holds
// about 0.3 % of its cache).
const defaultPerRequest = 0.005

// Plugin prefers engines with more free KV cache.
type Plugin struct{}

var _ framework.Scorer = Plugin{}

// Factory builds the plugin; it takes no args.
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return framework.NoArgs(Plugin{})(dec, h)
}

// Type implements framework.Plugin.
func (Plugin) Type() string { return Type }

// Score is 1 − estimated usage. The scraped usage (vllm:kv_cache_usage_perc
// or sglang:token_usage) counts the requests the engine held then; each
// request this router sent since adds the engine's usage per running
// request (the fleet's when it runs none), each that ended removes it. As
// the sample ages (framework.Freshness) the estimate moves to the fleet's
// mean, so a stale verdict stops steering traffic.
func (Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	if len(eps) == 0 {
		return
	}
	// Fleet usage per running request, for engines running none.
	var usage, running float64
	for _, ep := range eps {
		if m := ep.Metrics; m.Running >= 1 {
			usage += m.KVCacheUsage
			running += m.Running
		}
	}
	fleetPer := defaultPerRequest
	if running > 0 && usage > 0 {
		fleetPer = usage / running
	}
	now := time.Now()
	mean := 0.0
	for i, ep := range eps {
		m := ep.Metrics
		per := fleetPer
		if m.Running >= 1 && m.KVCacheUsage > 0 {
			per = m.KVCacheUsage / m.Running
		}
		sent, done := ep.Since()
		u := max(0, m.KVCacheUsage+(sent-done)*per)
		out[i] = u
		mean += u
	}
	mean /= float64(len(eps))
	for i, ep := range eps {
		w := framework.Freshness(ep.Metrics.At, ep.Metrics.Interval, now)
		out[i] = 1 - (w*out[i] + (1-w)*mean)
	}
}
