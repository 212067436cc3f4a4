// Package metrics holds the router's Prometheus metrics (upstream's
// kthena_router_* names), registered on a registry passed in.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's collectors.
type Metrics struct {
	Requests         *prometheus.CounterVec
	Duration         *prometheus.HistogramVec
	Tokens           *prometheus.CounterVec
	PluginDuration   *prometheus.HistogramVec
	Active           prometheus.Gauge
	ActiveDownstream prometheus.Gauge
	ActiveUpstream   prometheus.Gauge
	UpstreamAttempts *prometheus.CounterVec
	PrefixEvictions  prometheus.Counter
	ScrapeErrors     *prometheus.CounterVec
	ConfigReloads    *prometheus.CounterVec
	// PD routing: phase durations (upstream's names) and how the decider
	// served each request.
	PrefillDuration *prometheus.HistogramVec
	DecodeDuration  *prometheus.HistogramVec
	PDRequests      *prometheus.CounterVec
	// SessionAffinity counts requests of sticky ModelServers by what their
	// binding said (bound, unbound, lost, saturated).
	SessionAffinity *prometheus.CounterVec
	// Cold starts: requests held while a ModelServer has no ready pod.
	HeldRequests *prometheus.GaugeVec
	HeldTotal    *prometheus.CounterVec
	// Migrations counts streams that failed after their first byte, by
	// outcome.
	Migrations        *prometheus.CounterVec
	HoldDuration      *prometheus.HistogramVec
	ColdStarts        *prometheus.CounterVec
	ColdStartDuration *prometheus.HistogramVec
	WakeRequests      *prometheus.CounterVec
	// ServerInFlight is the router's own per-ModelServer load signal
	// (requests being handled, held ones included), fresher than the
	// engines' and present at zero replicas: an autoscaling signal through
	// a Prometheus metric source.
	ServerInFlight *prometheus.GaugeVec
	// Token rate limits (ModelRoute.spec.rateLimit).
	RateLimited          *prometheus.CounterVec
	RateLimitStoreErrors prometheus.Counter
	// Fair queue per ModelServer.
	FairnessQueued   *prometheus.GaugeVec
	FairnessRequests *prometheus.CounterVec
	FairnessWait     *prometheus.HistogramVec
	TenantTokens     *prometheus.CounterVec

	c caches
}

// New creates and registers the metrics on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kthena_router_requests_total", Help: "Inference requests handled, by outcome.",
		}, []string{"model", "path", "status_code", "error_type", "model_route", "backend_type", "backend_name", "upstream_model"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kthena_router_request_duration_seconds", Help: "End-to-end request duration.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"model", "path", "status_code"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kthena_router_tokens_total", Help: "Tokens processed, from engine usage.",
		}, []string{"model", "token_type"}),
		PluginDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kthena_router_scheduler_plugin_duration_seconds", Help: "Scheduler plugin latency.",
			Buckets: []float64{1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2},
		}, []string{"plugin", "type"}),
		Active:           prometheus.NewGauge(prometheus.GaugeOpts{Name: "kthena_router_active_requests", Help: "Requests being handled."}),
		ActiveDownstream: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kthena_router_active_downstream_requests", Help: "Client requests in flight."}),
		ActiveUpstream:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "kthena_router_active_upstream_requests", Help: "Engine requests in flight."}),
		UpstreamAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kthena_router_upstream_attempts_total", Help: "Engine attempts by result (ok, retry, failover, error).",
		}, []string{"result"}),
		PrefixEvictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "kthena_router_prefix_cache_evictions_total", Help: "Prefix blocks evicted from the index."}),
		ScrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kthena_router_engine_scrape_errors_total", Help: "Failed engine scrapes.",
		}, []string{"target"}),
		ConfigReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kthena_router_config_reloads_total", Help: "Router configuration reloads by result.",
		}, []string{"result"}),
	}
	phase := []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	m.PrefillDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kthena_router_request_prefill_duration_seconds", Help: "Prefill phase of disaggregated requests: from sending the prefill request to its response.", Buckets: phase,
	}, []string{"model"})
	m.DecodeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kthena_router_request_decode_duration_seconds", Help: "Decode phase of disaggregated requests: from sending the decode request to the end of its response.", Buckets: phase,
	}, []string{"model"})
	m.PDRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_pd_requests_total", Help: "Requests to prefill/decode ModelServers by how they were served (disaggregated, or decode_only when the decider skipped remote prefill).",
	}, []string{"model", "mode"})
	m.SessionAffinity = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_session_affinity_total", Help: "Requests of ModelServers with sessionSticky, by outcome of the session binding (bound, unbound, lost, saturated).",
	}, []string{"outcome"})
	reg.MustRegister(m.SessionAffinity)
	cold := []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300}
	m.HeldRequests = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kthena_router_held_requests", Help: "Requests waiting for a ModelServer with no ready pod to get one.",
	}, []string{"model_server"})
	m.HeldTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_held_requests_total", Help: "Requests held for a ModelServer with no ready pod, by outcome (released, timeout, overflow, cancelled, not_servable).",
	}, []string{"model_server", "outcome"})
	m.HoldDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kthena_router_hold_duration_seconds", Help: "How long released requests were held before a pod was ready.", Buckets: cold,
	}, []string{"model_server"})
	m.ColdStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_cold_starts_total", Help: "Cold starts: a request arrived for a ModelServer with no ready pod and none was held before it.",
	}, []string{"model_server"})
	m.ColdStartDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kthena_router_cold_start_duration_seconds", Help: "From the first held request of a cold start to the release of its requests to a ready pod.", Buckets: cold,
	}, []string{"model_server"})
	m.WakeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_wake_requests_total", Help: "Scale-from-zero requests sent for held requests, by result (ok, no_workload, error).",
	}, []string{"model_server", "result"})
	m.ServerInFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kthena_router_model_server_requests_in_flight", Help: "Requests being handled per ModelServer, from routing to the end of the response (held requests included).",
	}, []string{"model_server"})
	reg.MustRegister(m.ServerInFlight)
	m.RateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_rate_limited_requests_total", Help: "Requests refused by a ModelRoute's token rate limit, by token kind (input, output).",
	}, []string{"model", "kind"})
	m.RateLimitStoreErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kthena_router_rate_limit_store_errors_total", Help: "Global rate limit calls to Redis that failed; while Redis fails each replica enforces the limits alone, trying Redis again once a second.",
	})
	reg.MustRegister(m.RateLimited, m.RateLimitStoreErrors)
	m.FairnessQueued = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kthena_router_fairness_queue_length", Help: "Requests waiting in the fair queue of a ModelServer.",
	}, []string{"model_server"})
	m.FairnessRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_fairness_requests_total", Help: "Requests through the fair queue by outcome (admitted, queue_full, tenant_full, timeout, cancelled).",
	}, []string{"model_server", "outcome"})
	m.FairnessWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kthena_router_fairness_wait_seconds", Help: "Time admitted requests waited in the fair queue.",
		Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"model_server"})
	m.TenantTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_tenant_weighted_tokens_total", Help: "Tokens served per tenant and ModelServer through the fair queue, weighted (input and output weights).",
	}, []string{"model_server", "tenant"})
	reg.MustRegister(m.FairnessQueued, m.FairnessRequests, m.FairnessWait, m.TenantTokens)
	m.Migrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kthena_router_migrations_total", Help: "Streams that failed after their first byte, by outcome: completed (continued on another pod to the end), exhausted (attempts used up), no_pod (no other pod), unsupported (the request cannot be continued), disabled (migration off), retried_whole (a non-streamed response failed mid-body and was sent again).",
	}, []string{"model_server", "outcome"})
	reg.MustRegister(m.Migrations)
	reg.MustRegister(m.HeldRequests, m.HeldTotal, m.HoldDuration, m.ColdStarts, m.ColdStartDuration, m.WakeRequests)
	reg.MustRegister(m.Requests, m.Duration, m.Tokens, m.PluginDuration, m.Active, m.ActiveDownstream,
		m.ActiveUpstream, m.UpstreamAttempts, m.PrefixEvictions, m.ScrapeErrors, m.ConfigReloads,
		m.PrefillDuration, m.DecodeDuration, m.PDRequests)
	m.initCaches()
	return m
}
