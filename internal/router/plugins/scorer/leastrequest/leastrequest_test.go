package leastrequest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

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
		{"waiting counts as load", []*framework.Endpoint{ep("a", 5, 2, 3), ep("b", 4, 4, 0)}, []float64{0, 0.2}},
		// A transient queue (behind a long prefill) is not a hundredfold penalty.
		{"one waiting is one request", []*framework.Endpoint{ep("a", 3, 2, 1), ep("b", 4, 4, 0)}, []float64{0.25, 0}},
		{"other routers' requests count", []*framework.Endpoint{ep("a", 1, 6, 0), ep("b", 3, 3, 0)}, []float64{0, 0.5}},
		{"sent since the scrape count", []*framework.Endpoint{
			{Key: "a", InFlight: 5, Sent: 5, Metrics: &framework.Metrics{}}, ep("b", 2, 2, 0)}, []float64{0, 0.6}},
		{"stale sample: in-flight only", []*framework.Endpoint{
			{Key: "a", InFlight: 1, Metrics: &framework.Metrics{Running: 10, At: time.Now().Add(-time.Minute), Interval: time.Second}},
			ep("b", 2, 2, 0)}, []float64{0.5, 0}},
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

// TestSinceScrape: the engine's running and waiting counts are brought up
// to date with what the router sent and saw end since the scrape.
func TestSinceScrape(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name              string
		running, waiting  float64
		sent, done        uint64
		wantRun, wantWait float64
	}{
		{"room: new requests run", 4, 0, 3, 0, 7, 0},
		{"room: ended leave the batch", 4, 0, 0, 3, 1, 0},
		{"full: new requests wait", 8, 2, 3, 0, 8, 5},
		{"full: ended are replaced from the queue", 8, 2, 0, 2, 8, 0},
		{"full: the queue drains, then the batch", 8, 2, 0, 5, 5, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &framework.Endpoint{Sent: c.sent, Done: c.done, Metrics: &framework.Metrics{Running: c.running, Waiting: c.waiting}}
			r, w := state(e, now)
			if r != c.wantRun || w != c.wantWait {
				t.Fatalf("state = %v running, %v waiting; want %v, %v", r, w, c.wantRun, c.wantWait)
			}
		})
	}
}

// TestStaleSampleLosesWeight: an old sample's queue stops filtering and its
// running count gives way to the router's own in-flight count.
func TestStaleSampleLosesWeight(t *testing.T) {
	now := time.Now()
	e := &framework.Endpoint{InFlight: 3, Metrics: &framework.Metrics{Running: 10, Waiting: 30, Interval: time.Second}}
	for _, c := range []struct {
		age               time.Duration
		wantRun, wantWait float64
	}{{0, 10, 30}, {time.Minute, 3, 0}} {
		e.Metrics.At = now.Add(-c.age)
		if r, w := state(e, now); r != c.wantRun || w != c.wantWait {
			t.Fatalf("age %v: %v running, %v waiting; want %v, %v", c.age, r, w, c.wantRun, c.wantWait)
		}
	}
	e.Metrics.At = now.Add(-3 * time.Second)
	if r, w := state(e, now); !(r > 3 && r < 10 && w > 0 && w < 30) {
		t.Fatalf("age 3 s: %v running, %v waiting", r, w)
	}
}
