// Package leastlatency scores engines by their recent TTFT and TPOT.
package leastlatency

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

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

// loadKnee is the load at which an engine's latency is taken to have
// doubled from idle.
const loadKnee = 8

// maxSpread bounds how much slower than the fleet's mean per-load
// latency an engine may be judged (and how much faster).
const maxSpread = 2

// priorSamples is how many requests' worth of weight the fleet mean gets
// against an engine's own mean: with a few requests per interval an
// engine's TTFT says mostly whether they hit the prefix cache, not how
// fast the engine is, so its mean is pulled to the fleet's in proportion.
const priorSamples = 8

// Score rates each engine by its expected latency relative to the best:
// score = min(est)/est, in (0,1].
//
//   - An engine's latency is α·TTFT/T̄ + (1−α)·TPOT/P̄ (means over the last
//     scrape interval, in units of the fleet means T̄ and P̄ of engines that
//     report both). As the sample ages (framework.Freshness of LatencyAt) it
//     moves to 1, the fleet mean.
//   - Latency mostly follows load, and the means lag it (a TTFT measured now
//     is the queue of several seconds ago), so it is turned into a speed per
//     unit of load, l/(c + load at the scrape) with c = loadKnee, whose
//     spread around the fleet mean is compressed (square root) and bounded
//     to maxSpread either way: a lagging mean must not send the whole fleet's
//     traffic to one engine.
//   - An engine without data is taken to be as fast as the fastest one: it
//     gets traffic, and so data; one engine with data never outranks the
//     others by construction, and with no spread every engine scores 1.
//   - The expected latency is that speed × (c + load now), the load being
//     running and waiting requests brought up to date with what this router
//     sent and saw end since (framework.Endpoint.Load), so the engine that
//     looked fastest stops being so once it got its share.
func (p *Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	if len(eps) == 0 {
		return
	}
	var sumT, sumP float64
	n := 0
	for _, ep := range eps {
		if m := ep.Metrics; m.TTFT > 0 && m.TPOT > 0 {
			sumT += m.TTFT
			sumP += m.TPOT
			n++
		}
	}
	now := time.Now()
	// Speed per unit of load of engines with data; -1 for the others.
	mean := 0.0
	for i, ep := range eps {
		m := ep.Metrics
		if m.TTFT <= 0 || m.TPOT <= 0 {
			out[i] = -1
			continue
		}
		l := p.alpha*m.TTFT*float64(n)/sumT + (1-p.alpha)*m.TPOT*float64(n)/sumP
		at := m.LatencyAt
		if at.IsZero() {
			at = m.At
		}
		if k := m.LatencySamples; k > 0 {
			l = (k*l + priorSamples) / (k + priorSamples)
		}
		w := framework.Freshness(at, m.Interval, now)
		l = w*l + (1 - w)
		out[i] = l / (loadKnee + m.Running + m.Waiting)
		mean += out[i]
	}
	best := math.Inf(1)
	if n > 0 {
		mean /= float64(n)
		for i, s := range out {
			if s < 0 {
				continue
			}
			s = mean * math.Sqrt(s/mean)
			out[i] = min(max(s, mean/maxSpread), mean*maxSpread)
			best = min(best, out[i])
		}
	} else {
		best = 1
	}
	for i, ep := range eps {
		s := out[i]
		if s < 0 {
			s = best
		}
		out[i] = s * (loadKnee + ep.Load())
	}
	lo := math.Inf(1)
	for _, l := range out {
		lo = min(lo, l)
	}
	for i, l := range out {
		if l > 0 {
			out[i] = lo / l
		} else {
			out[i] = 1
		}
	}
}
