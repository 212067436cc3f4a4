package enginestate

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
)

// TestLatencyMeansPerInterval: TTFT is the mean of the first tokens since
// the previous scrape, and LatencySamples says how many there were.
func TestLatencyMeansPerInterval(t *testing.T) {
	var ttftSum, ttftCount atomic.Value
	ttftSum.Store(0.0)
	ttftCount.Store(0.0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprintf(w, "vllm:num_requests_running 3\nvllm:num_requests_waiting 1\n"+
				"vllm:time_to_first_token_seconds_sum %v\nvllm:time_to_first_token_seconds_count %v\n",
				ttftSum.Load(), ttftCount.Load())
		case "/v1/models":
			fmt.Fprint(w, `{"data":[{"id":"m"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)

	store := datastore.New()
	store.UpsertServer(&networkingv1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: networkingv1alpha1.ModelServerSpec{
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": "a"}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: int32(p)},
		},
	})
	store.UpsertPod(&datastore.Pod{Namespace: "ns", Name: "p", IP: host, Labels: map[string]string{"app": "a"}})
	s := New(Options{Source: store})
	ep := store.AllEndpoints()[0]

	ttftSum.Store(10.0)
	ttftCount.Store(20.0)
	s.ScrapeOnce(context.Background())
	if m := ep.Metrics(); !m.Scraped || m.Running != 3 || m.Waiting != 1 || m.TTFT != 0 {
		t.Fatalf("first scrape: %+v (no interval yet, so no mean)", m)
	}
	ttftSum.Store(10.0 + 3*0.5)
	ttftCount.Store(23.0)
	s.ScrapeOnce(context.Background())
	if m := ep.Metrics(); m.TTFT != 0.5 || m.LatencySamples != 3 {
		t.Fatalf("second scrape: TTFT %v over %v requests, want 0.5 over 3", m.TTFT, m.LatencySamples)
	}
	s.ScrapeOnce(context.Background()) // nothing finished: the last mean stays
	if m := ep.Metrics(); m.TTFT != 0.5 || m.LatencySamples != 3 {
		t.Fatalf("idle scrape: TTFT %v over %v requests, want the last mean kept", m.TTFT, m.LatencySamples)
	}
	ttftSum.Store(0.8)
	ttftCount.Store(2.0) // the engine restarted
	s.ScrapeOnce(context.Background())
	if m := ep.Metrics(); m.TTFT != 0.4 || m.LatencySamples != 2 {
		t.Fatalf("after a counter reset: TTFT %v over %v requests, want 0.4 over 2", m.TTFT, m.LatencySamples)
	}
}
