// Package random scores engines uniformly at random (a baseline).
package random

import (
	"context"
	"encoding/json"
	"math/rand/v2"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "random"

// Plugin is the random baseline.
type Plugin struct{}

var _ framework.Scorer = Plugin{}

// Factory builds the plugin; it takes no args.
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return framework.NoArgs(Plugin{})(dec, h)
}

// Type implements framework.Plugin.
func (Plugin) Type() string { return Type }

// Score draws a uniform value in [0,1) per engine.
func (Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	for i := range eps {
		out[i] = rand.Float64()
	}
}
