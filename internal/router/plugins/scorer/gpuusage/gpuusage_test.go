package gpuusage

import (
	"context"
	"testing"

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
