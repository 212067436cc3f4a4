package random

import (
	"context"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func TestScoreSpreadsChoices(t *testing.T) {
	eps := []*framework.Endpoint{{Key: "a"}, {Key: "b"}, {Key: "c"}}
	wins := make([]int, 3)
	out := make([]float64, 3)
	for range 3000 {
		Plugin{}.Score(context.Background(), &framework.Request{}, eps, out)
		best := 0
		for i, v := range out {
			if v < 0 || v > 1 {
				t.Fatalf("score %v out of range", v)
			}
			if v > out[best] {
				best = i
			}
		}
		wins[best]++
	}
	for i, w := range wins {
		if w < 800 || w > 1200 { // expected 1000, sd ≈ 26
			t.Fatalf("endpoint %d won %d of 3000", i, w)
		}
	}
}
