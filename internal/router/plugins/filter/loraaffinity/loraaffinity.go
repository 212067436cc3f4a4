// Package loraaffinity keeps only engines that already serve the requested
// LoRA adapter (as listed by their /v1/models).
package loraaffinity

import (
	"context"
	"encoding/json"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "lora-affinity"

// Plugin is the adapter filter.
type Plugin struct{}

var _ framework.Filter = Plugin{}

// Factory builds the plugin; it takes no args.
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return framework.NoArgs(Plugin{})(dec, h)
}

// Type implements framework.Plugin.
func (Plugin) Type() string { return Type }

// Filter keeps, for LoRA requests, the engines whose model list contains
// the adapter. Base-model requests pass unchanged.
func (Plugin) Filter(_ context.Context, req *framework.Request, in []*framework.Endpoint) []*framework.Endpoint {
	if !req.LoRA {
		return in
	}
	out := in[:0]
	for _, ep := range in {
		if _, ok := ep.Metrics.Models[req.Model]; ok {
			out = append(out, ep)
		}
	}
	return out
}
