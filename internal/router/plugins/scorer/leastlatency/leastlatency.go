// Package leastlatency scores engines by their recent TTFT and TPOT.
package leastlatency

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "least-latency"

// Args are the plugin's arguments.
type Args struct {
	// TTFTTPOTWeightFactor is α in α·sTTFT + (1−α)·sTPOT, in [0,1]
	// (default 0.5).
	TTFTTPOTWeightFactor *float64 `json:"TTFTTPOTWeightFactor"`
}

// Plugin prefers engines with lower recent latency.
type Plugin struct{ alpha float64 }

var _ framework.Scorer = (*Plugin)(nil)

// Factory builds the plugin from args.
func Factory(dec *json.Decoder, _ framework.Handle) (framework.Plugin, error) {
	a := Args{}
	if dec != nil {
		if err := dec.Decode(&a); err != nil {
			return nil, err
		}
	}
	alpha := 0.5
	if a.TTFTTPOTWeightFactor != nil {
		alpha = *a.TTFTTPOTWeightFactor
	}
	if alpha < 0 || alpha > 1 {
		return nil, fmt.Errorf("TTFTTPOTWeightFactor must be in [0,1], got %v", alpha)
	}
	return &Plugin{alpha: alpha}, nil
}

// New returns the plugin with factor alpha.
func New(alpha float64) *Plugin { return &Plugin{alpha: alpha} }

// Type implements framework.Plugin.
func (p *Plugin) Type() string { return Type }

// Score min-max normalises TTFT and TPOT over engines that report both
// (1 for the fastest, 0 for the slowest, 1 when there is no spread) and
// blends them with α. Engines without data get 0.5.
func (p *Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	minT, maxT, minP, maxP := 0.0, 0.0, 0.0, 0.0
	first := true
	for _, ep := range eps {
		m := ep.Metrics
		if m.TTFT <= 0 || m.TPOT <= 0 {
			continue
		}
		if first {
			minT, maxT, minP, maxP = m.TTFT, m.TTFT, m.TPOT, m.TPOT
			first = false
			continue
		}
		minT, maxT = min(minT, m.TTFT), max(maxT, m.TTFT)
		minP, maxP = min(minP, m.TPOT), max(maxP, m.TPOT)
	}
	for i, ep := range eps {
		m := ep.Metrics
		if m.TTFT <= 0 || m.TPOT <= 0 {
			out[i] = 0.5
			continue
		}
		out[i] = p.alpha*norm(m.TTFT, minT, maxT) + (1-p.alpha)*norm(m.TPOT, minP, maxP)
	}
}

func norm(v, lo, hi float64) float64 {
	if hi <= lo {
		return 1
	}
	return (hi - v) / (hi - lo)
}
