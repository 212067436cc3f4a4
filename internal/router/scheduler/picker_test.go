package scheduler

import (
	"context"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func cands(totals []float64, inflight []int64) []framework.Candidate {
	c := make([]framework.Candidate, len(totals))
	for i := range totals {
		c[i] = framework.Candidate{Endpoint: &framework.Endpoint{Key: string(rune('a' + i)), InFlight: inflight[i]}, Total: totals[i]}
	}
	return c
}

// TestPickEqualScoresSpread: equal totals do not always pick the same
// endpoint.
func TestPickEqualScoresSpread(t *testing.T) {
	wins := map[string]int{}
	for range 400 {
		c := MaxScorePicker{}.Pick(context.Background(), nil, cands([]float64{1, 1, 1, 1}, []int64{0, 0, 0, 0}))
		wins[c[0].Endpoint.Key]++
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		if wins[k] < 50 { // expected 100
			t.Fatalf("wins %v", wins)
		}
	}
}

// TestPickNearTiePowerOfTwo: among near-ties the one with fewer requests in
// flight wins its draws (power of two choices): the most loaded of four
// never goes first, the least loaded does in about half the picks (it is
// drawn with probability 1 − (3/4 · 2/3) = 1/2), and a clearly better total
// always wins.
func TestPickNearTiePowerOfTwo(t *testing.T) {
	p := MaxScorePicker{Near: 0.05}
	wins := map[string]int{}
	for range 1000 {
		c := p.Pick(context.Background(), nil, cands([]float64{0.99, 1, 0.98, 0.97}, []int64{0, 5, 6, 9}))
		wins[c[0].Endpoint.Key]++
		if len(c) != 4 {
			t.Fatal("candidates lost")
		}
	}
	if wins["d"] != 0 || wins["a"] < 420 || wins["a"] > 580 {
		t.Fatalf("wins %v", wins)
	}
	for range 100 {
		c := p.Pick(context.Background(), nil, cands([]float64{0.5, 1, 0.98}, []int64{0, 50, 60}))
		if c[0].Endpoint.Key == "a" {
			t.Fatal("a total outside the tolerance won on load")
		}
		if c[2].Endpoint.Key != "a" {
			t.Fatalf("order %s %s %s", c[0].Endpoint.Key, c[1].Endpoint.Key, c[2].Endpoint.Key)
		}
	}
}
