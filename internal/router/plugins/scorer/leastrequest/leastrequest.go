// Package leastrequest is upstream's least-request plugin: a filter that
// drops engines with a long waiting queue and a scorer that prefers the
// engine with the fewest requests in flight from this router.
package leastrequest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kthena/kthena/internal/router/framework"
)

// Type is the plugin type name.
const Type = "least-request"

// Args are the plugin's arguments.
type Args struct {
	// MaxWaitingRequests is the engine queue length at which an engine is
	// filtered out (default 10).
	MaxWaitingRequests int `json:"maxWaitingRequests"`
}

// Plugin filters and scores by load.
type Plugin struct {
	maxWaiting float64
}

var (
	_ framework.Filter = (*Plugin)(nil)
	_ framework.Scorer = (*Plugin)(nil)
)

// Factory builds the plugin from args.
func Factory(dec *json.Decoder, _ framework.Handle) (framework.Plugin, error) {
	a := Args{}
	if dec != nil {
		if err := dec.Decode(&a); err != nil {
			return nil, err
		}
	}
	if a.MaxWaitingRequests < 0 {
		return nil, fmt.Errorf("maxWaitingRequests must be >= 0, got %d", a.MaxWaitingRequests)
	}
	return New(a), nil
}

// New returns the plugin; MaxWaitingRequests 0 means 10.
func New(a Args) *Plugin {
	if a.MaxWaitingRequests == 0 {
		a.MaxWaitingRequests = 10
	}
	return &Plugin{maxWaiting: float64(a.MaxWaitingRequests)}
}

// Type implements framework.Plugin.
func (p *Plugin) Type() string { return Type }

// Filter keeps engines whose waiting queue is below the limit. When every
// engine is over the limit it keeps them all (upstream fails the request
// with 400 instead), so the scorers still pick the least loaded.
func (p *Plugin) Filter(_ context.Context, _ *framework.Request, in []*framework.Endpoint) []*framework.Endpoint {
	keep := 0
	for _, ep := range in {
		if ep.Metrics.Waiting < p.maxWaiting {
			keep++
		}
	}
	if keep == 0 || keep == len(in) {
		return in
	}
	out := in[:0]
	for _, ep := range in {
		if ep.Metrics.Waiting < p.maxWaiting {
			out = append(out, ep)
		}
	}
	return out
}

// Score is (max−base)/max with base = inFlight + 100·max(inFlight−running, 0):
// requests this router has sent that the engine does not yet run count as
// queued and weigh a hundred times more.
func (p *Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	maxBase := 0.0
	for i, ep := range eps {
		b := base(ep)
		out[i] = b
		if b > maxBase {
			maxBase = b
		}
	}
	for i := range out {
		if maxBase == 0 {
			out[i] = 1
		} else {
			out[i] = (maxBase - out[i]) / maxBase
		}
	}
}

func base(ep *framework.Endpoint) float64 {
	f := float64(ep.InFlight)
	q := f - ep.Metrics.Running
	if q < 0 {
		q = 0
	}
	return f + 100*q
}
