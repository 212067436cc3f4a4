package metrics

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// The cached children are the exported ones, past the cache's bound too.
func TestCachedChildren(t *testing.T) {
	m := New(prometheus.NewRegistry())
	l := RequestLabels{Model: "m", Path: "/v1/chat/completions", Status: "200", Route: "ns/r", BackendType: "ModelServer", BackendName: "ns/s", UpstreamModel: "u"}
	for range 3 {
		m.Request(l).Count.Inc()
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues(l.Model, l.Path, l.Status, "", l.Route, l.BackendType, l.BackendName, l.UpstreamModel)); got != 3 {
		t.Fatalf("requests_total = %v, want 3", got)
	}
	in, out := m.TokenCounters("m")
	in.Add(5)
	out.Add(7)
	if a, b := testutil.ToFloat64(m.Tokens.WithLabelValues("m", "input")), testutil.ToFloat64(m.Tokens.WithLabelValues("m", "output")); a != 5 || b != 7 {
		t.Fatalf("tokens %v/%v, want 5/7", a, b)
	}
	m.InFlight("ns/s").Inc()
	m.Attempt("ok")
	m.Attempt("ok")
	if g, c := testutil.ToFloat64(m.ServerInFlight.WithLabelValues("ns/s")), testutil.ToFloat64(m.UpstreamAttempts.WithLabelValues("ok")); g != 1 || c != 2 {
		t.Fatalf("in flight %v, attempts %v", g, c)
	}
	for i := range maxCached + 10 {
		m.ObservePlugin(fmt.Sprintf("p%d", i), "score", 0)
		m.ObservePlugin(fmt.Sprintf("p%d", i), "score", 0)
	}
	if n := len(*m.c.plugins.m.Load()); n != maxCached {
		t.Fatalf("%d plugin children cached, want the bound %d", n, maxCached)
	}
	if got := testutil.CollectAndCount(m.PluginDuration); got != maxCached+10 {
		t.Fatalf("%d plugin series, want %d", got, maxCached+10)
	}
	last := fmt.Sprintf("p%d", maxCached+9)
	var d dto.Metric
	if err := m.PluginDuration.WithLabelValues(last, "score").(prometheus.Metric).Write(&d); err != nil || d.GetHistogram().GetSampleCount() != 2 {
		t.Fatalf("uncached child: %v, %d observations, want 2", err, d.GetHistogram().GetSampleCount())
	}
}
