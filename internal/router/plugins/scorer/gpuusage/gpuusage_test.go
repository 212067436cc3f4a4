package gpuusage

import (
	"context"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/router/framework"
)

func TestScore(t *testing.T) {
	cases := []struct {
		usage []float64
		want  []float64
	}{
		{[]float64{0, 1}, []float64{1, 0}},
		{[]float64{0.25, 0.75}, []float64{0.75, 0.25}},
	}
	for _, c := range cases {
		eps := make([]*framework.Endpoint, len(c.usage))
		for i, u := range c.usage {
			eps[i] = &framework.Endpoint{Metrics: &framework.Metrics{KVCacheUsage: u}}
		}
		out := make([]float64, len(eps))
		Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
		for i := range out {
			if out[i] != c.want[i] {
				t.Fatalf("usage %v: got %v want %v", c.usage, out, c.want)
			}
		}
	}
}

// TestBurstAddsUsage: requests sent since the scrape add the engine's usage
// per running request, so a burst between two scrapes water-fills the
// engines instead of all landing on the one that had the most free cache.
func TestBurstAddsUsage(t *testing.T) {
	eps := []*framework.Endpoint{
		{Metrics: &framework.Metrics{KVCacheUsage: 0.10, Running: 10}},
		{Metrics: &framework.Metrics{KVCacheUsage: 0.20, Running: 20}},
	}
	out := make([]float64, 2)
	Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
	if out[0] <= out[1] {
		t.Fatalf("before: %v", out)
	}
	eps[0].Sent = 11 // 1 % per request: 0.21 now
	Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
	if out[0] >= out[1] {
		t.Fatalf("after 11 more requests the first engine still wins: %v", out)
	}
	eps[0].Done = 11
	eps[1].Done = 20 // the second engine finished everything it ran
	Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
	if out[1] != 1 {
		t.Fatalf("an engine whose requests all ended scores %v, want 1", out[1])
	}
}

// TestIdleEngineUsesFleetEstimate: an engine that ran nothing at the scrape
// is charged the fleet's usage per request for what it was sent since.
func TestIdleEngineUsesFleetEstimate(t *testing.T) {
	eps := []*framework.Endpoint{
		{Metrics: &framework.Metrics{KVCacheUsage: 0.2, Running: 10}},
		{Metrics: &framework.Metrics{}, Sent: 10},
	}
	out := make([]float64, 2)
	Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
	if d := out[0] - out[1]; d > 1e-9 || d < -1e-9 {
		t.Fatalf("idle engine sent as many requests as the busy one runs: %v", out)
	}
}

// TestStaleSampleLosesWeight: as samples age their spread fades to the
// fleet mean.
func TestStaleSampleLosesWeight(t *testing.T) {
	now := time.Now()
	mk := func(u float64, age time.Duration) *framework.Endpoint {
		return &framework.Endpoint{Metrics: &framework.Metrics{KVCacheUsage: u, At: now.Add(-age), Interval: time.Second}}
	}
	spread := func(age time.Duration) float64 {
		out := make([]float64, 2)
		Plugin{}.Score(context.Background(), &framework.Request{}, []*framework.Endpoint{mk(0.1, age), mk(0.5, age)}, out)
		return out[0] - out[1]
	}
	fresh, older, stale := spread(0), spread(3*time.Second), spread(time.Minute)
	if !(fresh > older && older > stale && stale == 0) {
		t.Fatalf("spread by age 0, 3 s, 1 min: %v %v %v", fresh, older, stale)
	}
}
