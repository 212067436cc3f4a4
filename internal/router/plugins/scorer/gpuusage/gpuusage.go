// Package gpuusage scores engines by free KV cache: 1 − kv_cache_usage.
package gpuusage

import (
	"context"
	"encoding/json"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "gpu-usage"

// Plugin prefers engines with more free KV cache.
type Plugin struct{}

var _ framework.Scorer = Plugin{}

// Factory builds the plugin; it takes no args.
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return framework.NoArgs(Plugin{})(dec, h)
}

// Type implements framework.Plugin.
func (Plugin) Type() string { return Type }

// Score is 1 − usage, with usage from vllm:kv_cache_usage_perc or
// sglang:token_usage.
func (Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	for i, ep := range eps {
		out[i] = 1 - ep.Metrics.KVCacheUsage
	}
}
