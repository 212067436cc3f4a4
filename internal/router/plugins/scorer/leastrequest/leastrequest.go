// Package leastrequest is upstream's least-request plugin: a filter that
// drops engines with a long waiting queue and a scorer that prefers the
// engine with the fewest requests in flight from this router.
package leastrequest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// Filter keeps engines whose waiting queue (estimated now: see state) is
// below the limit. When every engine is over the limit it keeps them all
// (upstream fails the request with 400 instead), so the scorers still pick
// the least loaded.
func (p *Plugin) Filter(_ context.Context, _ *framework.Request, in []*framework.Endpoint) []*framework.Endpoint {
	now := time.Now()
	keep := 0
	for _, ep := range in {
		if _, w := state(ep, now); w < p.maxWaiting {
			keep++
		}
	}
	if keep == 0 || keep == len(in) {
		return in
	}
	out := in[:0]
	for _, ep := range in {
		if _, w := state(ep, now); w < p.maxWaiting {
			out = append(out, ep)
		}
	}
	return out
}

// Score is (max−base)/max with base the requests at the engine (running
// and waiting) estimated now: the scrape's count plus what this router
// sent and saw end since (framework.Endpoint.Load), moving to this
// router's in-flight count as the sample ages. Upstream weighs queued
// requests a hundred times (base = inFlight + 100·queued); we did too,
// with the queue estimated now, and that made least-request alone slower
// to first token than random placement on long prompts (TTFT p90 0.90-0.97
// s against 0.68-0.73 s in three runs of the quality bench, 0.64 s with
// this base): an engine with chunked prefill reports a queue at most
// scrapes (requests waiting a few steps behind a long prefill), and the
// estimate of it drains only as requests end, seconds of decoding later,
// so the hundredfold weight made scrape noise the verdict. A real queue
// still counts, request for request, and the filter drops engines whose
// queue is over maxWaitingRequests.
func (p *Plugin) Score(_ context.Context, _ *framework.Request, eps []*framework.Endpoint, out []float64) {
	now := time.Now()
	maxBase := 0.0
	for i, ep := range eps {
		b := base(ep, now)
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

func base(ep *framework.Endpoint, now time.Time) float64 {
	w := framework.Freshness(ep.Metrics.At, ep.Metrics.Interval, now)
	return w*ep.Load() + (1-w)*float64(ep.InFlight)
}

func state(ep *framework.Endpoint, now time.Time) (running, waiting float64) {
	m := ep.Metrics
	sent, done := ep.Since()
	running, waiting = m.Running, m.Waiting
	if waiting <= 0 {
		running = max(0, running+sent-done)
	} else {
		waiting = max(0, waiting+sent-done)
		if waiting == 0 { // the queue drained: the batch shrinks
			running = max(0, running+m.Waiting+sent-done)
		}
	}
	w := framework.Freshness(m.At, m.Interval, now)
	return w*running + (1-w)*float64(ep.InFlight), w * waiting
}
