package leastlatency

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/router/framework"
)

func mk(ttft, tpot float64) *framework.Endpoint {
	return &framework.Endpoint{Metrics: &framework.Metrics{TTFT: ttft, TPOT: tpot}}
}

func score(t *testing.T, alpha float64, eps ...*framework.Endpoint) []float64 {
	t.Helper()
	out := make([]float64, len(eps))
	New(alpha).Score(context.Background(), &framework.Request{}, eps, out)
	return out
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestScore(t *testing.T) {
	cases := []struct {
		name  string
		alpha float64
		eps   []*framework.Endpoint
		want  []float64
	}{
		// Scores are the best expected latency over each one's, the spread
		// of latencies compressed by a square root.
		{"faster wins", 0.5, []*framework.Endpoint{mk(0.1, 0.01), mk(0.3, 0.03)}, []float64{1, math.Sqrt(1.0 / 3)}},
		{"ttft only", 1, []*framework.Endpoint{mk(0.1, 0.03), mk(0.2, 0.01), mk(0.4, 0.02)}, []float64{1, math.Sqrt(0.5), 0.5}},
		{"tpot only", 0, []*framework.Endpoint{mk(0.1, 0.03), mk(0.2, 0.01)}, []float64{math.Sqrt(1.0 / 3), 1}},
		// The fast one is bounded at half the mean: 0.5 against √(10/5.05).
		{"spread bounded", 1, []*framework.Endpoint{mk(0.1, 0.01), mk(10, 0.01)}, []float64{1, 0.5 / math.Sqrt(10/5.05)}},
		{"no spread ties", 0.5, []*framework.Endpoint{mk(0.2, 0.02), mk(0.2, 0.02)}, []float64{1, 1}},
		// The lock-in of min/max scoring: the only engine with data scored
		// 1 and the others 0.5, so they never got traffic.
		{"no data is as good as the best", 0.5, []*framework.Endpoint{mk(0.1, 0.01), mk(0, 0), mk(0.2, 0.02)}, []float64{1, 1, math.Sqrt(0.5)}},
		{"single engine with data does not win", 0.5, []*framework.Endpoint{mk(0.1, 0.01), mk(0, 0)}, []float64{1, 1}},
		{"nobody has data", 0.5, []*framework.Endpoint{mk(0, 0), mk(0, 0)}, []float64{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := score(t, c.alpha, c.eps...)
			for i := range out {
				if !near(out[i], c.want[i]) {
					t.Fatalf("got %v want %v", out, c.want)
				}
			}
		})
	}
}

// TestBurstRaisesLatency: requests sent since the scrape make the engine
// that looked fastest look slower, so a burst between two scrapes does not
// all land on it.
func TestBurstRaisesLatency(t *testing.T) {
	fast, slow := mk(0.1, 0.01), mk(0.15, 0.015)
	fast.Metrics.Running, slow.Metrics.Running = 4, 4
	if out := score(t, 0.5, fast, slow); out[0] <= out[1] {
		t.Fatalf("before the burst: %v", out)
	}
	fast.Sent, fast.InFlight = 8, 8 // eight more since the scrape: (8+12)/(8+4) its latency
	if out := score(t, 0.5, fast, slow); out[0] >= out[1] {
		t.Fatalf("after 8 more requests the fast engine still wins: %v", out)
	}
}

// TestStaleSampleLosesWeight: a latency sample that was not renewed for
// several scrape intervals drifts to the fleet mean.
func TestStaleSampleLosesWeight(t *testing.T) {
	now := time.Now()
	at := func(ep *framework.Endpoint, age time.Duration) *framework.Endpoint {
		ep.Metrics.Interval, ep.Metrics.At, ep.Metrics.LatencyAt = time.Second, now, now.Add(-age)
		return ep
	}
	fresh := score(t, 0.5, at(mk(0.1, 0.01), 0), at(mk(0.3, 0.03), 0))
	older := score(t, 0.5, at(mk(0.1, 0.01), 0), at(mk(0.3, 0.03), 3*time.Second))
	stale := score(t, 0.5, at(mk(0.1, 0.01), 0), at(mk(0.3, 0.03), time.Minute))
	if !(fresh[1] < older[1] && older[1] < stale[1]) {
		t.Fatalf("slow engine's score by age 0, 3 s, 1 min: %v %v %v", fresh[1], older[1], stale[1])
	}
	// Fleet means 0.2 s and 20 ms: the fast engine's latency is 0.5 of
	// them, the stale one's is taken to be the mean, 1; compressed: √0.5.
	if !near(stale[1], math.Sqrt(0.5)) {
		t.Fatalf("stale score %v, want √0.5", stale[1])
	}
}

func TestFactoryRejectsBadAlpha(t *testing.T) {
	if _, err := Factory(json.NewDecoder(strings.NewReader(`{"TTFTTPOTWeightFactor": 1.5}`)), nil); err == nil {
		t.Fatal("alpha 1.5 accepted")
	}
}

// TestFewRequestsSayLittle: an engine whose mean TTFT covers a few
// requests is judged close to the fleet mean; the same spread over many
// requests keeps its weight.
func TestFewRequestsSayLittle(t *testing.T) {
	with := func(n float64) []float64 {
		fast, slow := mk(0.1, 0.01), mk(0.3, 0.03)
		fast.Metrics.LatencySamples, slow.Metrics.LatencySamples = n, n
		return score(t, 0.5, fast, slow)
	}
	few, many := with(2), with(1000)
	if !(few[1] > many[1] && many[1] < 1 && few[1] < 1) {
		t.Fatalf("slow engine's score over 2 requests %v, over 1000 %v: want the few-request verdict milder", few[1], many[1])
	}
	if d := many[1] - math.Sqrt(1.0/3); d > 0.01 || d < -0.01 {
		t.Fatalf("over 1000 requests the slow engine scores %v, want ≈ √(1/3)", many[1])
	}
}
