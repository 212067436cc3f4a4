package leastrequest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func ep(key string, inflight int64, running, waiting float64) *framework.Endpoint {
	return &framework.Endpoint{Key: key, InFlight: inflight, Metrics: &framework.Metrics{Running: running, Waiting: waiting}}
}

func TestScore(t *testing.T) {
	cases := []struct {
		name string
		eps  []*framework.Endpoint
		want []float64
	}{
		{"all idle", []*framework.Endpoint{ep("a", 0, 0, 0), ep("b", 0, 0, 0)}, []float64{1, 1}},
		{"inflight running", []*framework.Endpoint{ep("a", 4, 4, 0), ep("b", 2, 2, 0)}, []float64{0, 0.5}},
		{"queued weighs more", []*framework.Endpoint{ep("a", 4, 4, 0), ep("b", 2, 0, 0)}, []float64{1 - 4.0/202, 0}},
	}
	p := New(Args{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := make([]float64, len(c.eps))
			p.Score(context.Background(), &framework.Request{}, c.eps, out)
			for i := range out {
				if d := out[i] - c.want[i]; d > 1e-9 || d < -1e-9 {
					t.Fatalf("score[%d] = %v, want %v", i, out[i], c.want[i])
				}
			}
		})
	}
}

func TestFilter(t *testing.T) {
	cases := []struct {
		name string
		eps  []*framework.Endpoint
		want []string
	}{
		{"drops saturated", []*framework.Endpoint{ep("a", 0, 0, 12), ep("b", 0, 0, 3)}, []string{"b"}},
		{"at limit dropped", []*framework.Endpoint{ep("a", 0, 0, 10), ep("b", 0, 0, 9)}, []string{"b"}},
		{"all saturated keeps all", []*framework.Endpoint{ep("a", 0, 0, 12), ep("b", 0, 0, 30)}, []string{"a", "b"}},
	}
	p := New(Args{MaxWaitingRequests: 10})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := p.Filter(context.Background(), &framework.Request{}, c.eps)
			var keys []string
			for _, e := range got {
				keys = append(keys, e.Key)
			}
			if strings.Join(keys, ",") != strings.Join(c.want, ",") {
				t.Fatalf("kept %v, want %v", keys, c.want)
			}
		})
	}
}

func TestFactoryStrict(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"maxWaitingRequest": 3}`))
	dec.DisallowUnknownFields()
	if _, err := Factory(dec, nil); err == nil {
		t.Fatal("unknown field accepted")
	}
	dec = json.NewDecoder(strings.NewReader(`{"maxWaitingRequests": -1}`))
	if _, err := Factory(dec, nil); err == nil {
		t.Fatal("negative limit accepted")
	}
}
