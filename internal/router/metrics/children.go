package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// children caches a vector's children by label values. client_golang
// validates, hashes and looks up the values under a lock on every
// WithLabelValues; the router asks for the same few children on every
// request, so it reads them from a copy-on-write map instead. Children are
// never deleted from the router's vectors, so a cached child stays the
// exported one.
type children[K comparable, V any] struct {
	mu  sync.Mutex
	m   atomic.Pointer[map[K]V]
	new func(K) V
}

// maxCached bounds a cache: label values come partly from clients (the
// model name), and past this many sets the vector is asked directly.
const maxCached = 512

func (c *children[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	v := c.new(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil && len(*old) >= maxCached {
		return v
	}
	n := make(map[K]V, 1+lenOf(old))
	if old != nil {
		for k, v := range *old {
			n[k] = v
		}
	}
	n[k] = v
	c.m.Store(&n)
	return v
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}

// RequestLabels are the labels of kthena_router_requests_total; the
// duration histogram takes the first three.
type RequestLabels struct {
	Model, Path, Status, ErrorType, Route, BackendType, BackendName, UpstreamModel string
}

// RequestMetrics are one label set's request counter and duration
// histogram.
type RequestMetrics struct {
	Count    prometheus.Counter
	Duration prometheus.Observer
}

type pluginKey struct{ plugin, kind string }

// caches are the Metrics' cached children.
type caches struct {
	requests children[RequestLabels, RequestMetrics]
	tokens   children[string, [2]prometheus.Counter]
	inFlight children[string, prometheus.Gauge]
	attempts children[string, prometheus.Counter]
	plugins  children[pluginKey, prometheus.Observer]
}

func (m *Metrics) initCaches() {
	m.c.requests.new = func(l RequestLabels) RequestMetrics {
		return RequestMetrics{
			Count:    m.Requests.WithLabelValues(l.Model, l.Path, l.Status, l.ErrorType, l.Route, l.BackendType, l.BackendName, l.UpstreamModel),
			Duration: m.Duration.WithLabelValues(l.Model, l.Path, l.Status),
		}
	}
	m.c.tokens.new = func(model string) [2]prometheus.Counter {
		return [2]prometheus.Counter{m.Tokens.WithLabelValues(model, "input"), m.Tokens.WithLabelValues(model, "output")}
	}
	m.c.inFlight.new = func(server string) prometheus.Gauge { return m.ServerInFlight.WithLabelValues(server) }
	m.c.attempts.new = func(result string) prometheus.Counter { return m.UpstreamAttempts.WithLabelValues(result) }
	m.c.plugins.new = func(k pluginKey) prometheus.Observer { return m.PluginDuration.WithLabelValues(k.plugin, k.kind) }
}

// Request returns the request counter and duration histogram of l.
func (m *Metrics) Request(l RequestLabels) RequestMetrics { return m.c.requests.get(l) }

// TokenCounters returns a model's input and output token counters.
func (m *Metrics) TokenCounters(model string) (input, output prometheus.Counter) {
	c := m.c.tokens.get(model)
	return c[0], c[1]
}

// InFlight returns a ModelServer's in-flight gauge.
func (m *Metrics) InFlight(server string) prometheus.Gauge { return m.c.inFlight.get(server) }

// Attempt counts one upstream attempt's result.
func (m *Metrics) Attempt(result string) { m.c.attempts.get(result).Inc() }

// ObservePlugin implements the scheduler's Recorder.
func (m *Metrics) ObservePlugin(plugin, kind string, d time.Duration) {
	m.c.plugins.get(pluginKey{plugin, kind}).Observe(d.Seconds())
}
