// Package roundrobin gives the top score to each engine in turn (a
// baseline).
package roundrobin

import (
	"context"
	"encoding/json"
	"sync/atomic"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "round-robin"

// Plugin is the round-robin baseline.
type Plugin struct{ next atomic.Uint64 }

var _ framework.Scorer = (*Plugin)(nil)

// Factory builds the plugin; it takes no args.
func Factory(dec *json.Decoder, h framework.Handle) (framework.Plugin, error) {
	return framework.NoArgs(&Plugin{})(dec, h)
}

// Type implements framework.Plugin.
func (p *Plugin) Type() string { return Type }

// Score gives 1 to the next engine in turn (engines arrive in a stable
// order) and 0 to the rest.
func (p *Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	if len(eps) == 0 {
		return
	}
	i := (p.next.Add(1) - 1) % uint64(len(eps))
	out[i] = 1
}
