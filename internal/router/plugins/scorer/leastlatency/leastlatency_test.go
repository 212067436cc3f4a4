package leastlatency

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func TestScore(t *testing.T) {
	mk := func(ttft, tpot float64) *framework.Endpoint {
		return &framework.Endpoint{Metrics: &framework.Metrics{TTFT: ttft, TPOT: tpot}}
	}
	cases := []struct {
		name  string
		alpha float64
		eps   []*framework.Endpoint
		want  []float64
	}{
		{"faster wins", 0.5, []*framework.Endpoint{mk(0.1, 0.01), mk(0.3, 0.03)}, []float64{1, 0}},
		{"no data is neutral", 0.5, []*framework.Endpoint{mk(0.1, 0.01), mk(0, 0)}, []float64{1, 0.5}},
		{"ttft only", 1, []*framework.Endpoint{mk(0.1, 0.03), mk(0.2, 0.01), mk(0.3, 0.02)}, []float64{1, 0.5, 0}},
		{"tpot only", 0, []*framework.Endpoint{mk(0.1, 0.03), mk(0.2, 0.01)}, []float64{0, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := make([]float64, len(c.eps))
			New(c.alpha).Score(context.Background(), &framework.Request{}, c.eps, out)
			for i := range out {
				if d := out[i] - c.want[i]; d > 1e-9 || d < -1e-9 {
					t.Fatalf("got %v want %v", out, c.want)
				}
			}
		})
	}
}

func TestFactoryRejectsBadAlpha(t *testing.T) {
	if _, err := Factory(json.NewDecoder(strings.NewReader(`{"TTFTTPOTWeightFactor": 1.5}`)), nil); err == nil {
		t.Fatal("alpha 1.5 accepted")
	}
}
