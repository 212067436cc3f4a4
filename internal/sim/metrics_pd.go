package sim

import (
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// simMetrics are the simulator's own series, under the kthena_sim: prefix,
// for quantities the real engines do not export under a name of their own:
// the KV a prefill engine holds for remote decodes and the transfers of
// every connector.
type simMetrics struct {
	heldBlocks, heldRequests prometheus.Gauge
	transferSeconds          *prometheus.HistogramVec
	transferTokens           *prometheus.CounterVec
	transfers                *prometheus.CounterVec
	transferFailures         *prometheus.CounterVec
	lmcacheStored            prometheus.Counter
}

// kvTransferBuckets are vLLM's NIXL transfer-time buckets.
var kvTransferBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0}

// kvBytesBuckets go from 1 MiB to 16 GiB by powers of four.
var kvBytesBuckets = prometheus.ExponentialBuckets(1<<20, 4, 8)

func newSimMetrics(reg prometheus.Registerer, model string) *simMetrics {
	f := promauto{reg: reg, labels: prometheus.Labels{"model_name": model}}
	m := &simMetrics{
		heldBlocks:    f.gauge("kthena_sim:kv_held_blocks", "KV blocks a prefill engine holds for decode engines to pull (they count as used)."),
		heldRequests:  f.gauge("kthena_sim:kv_held_requests", "Finished prefills whose KV is held for a decode engine."),
		lmcacheStored: f.counter("kthena_sim:lmcache_stored_tokens_total", "Prompt tokens whose KV this engine stored in the LMCache store."),
	}
	m.transferSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kthena_sim:kv_transfer_seconds",
		Help: "Modelled time to receive a request's KV (simulated seconds), by connector.", Buckets: kvTransferBuckets,
		ConstLabels: f.labels}, []string{"connector"})
	m.transferTokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kthena_sim:kv_transferred_tokens_total",
		Help: "Prompt tokens whose KV was received instead of computed, by connector.", ConstLabels: f.labels}, []string{"connector"})
	m.transfers = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kthena_sim:kv_transfers_total",
		Help: "KV transfers received, by connector.", ConstLabels: f.labels}, []string{"connector"})
	m.transferFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kthena_sim:kv_transfer_failures_total",
		Help: "KV transfers or store lookups that failed, by connector.", ConstLabels: f.labels}, []string{"connector"})
	reg.MustRegister(m.transferSeconds, m.transferTokens, m.transfers, m.transferFailures)
	return m
}

func (m *simMetrics) step(s engine.StepStats) {
	m.heldBlocks.Set(float64(s.HeldBlocks))
	m.heldRequests.Set(float64(s.HeldRequests))
}

// nixlMetrics are vLLM's NIXL connector series (engines with the nixl
// connector): transfer time and size on the decode side, expired KV on the
// prefill side.
type nixlMetrics struct {
	xferTime, bytes prometheus.Histogram
	failed, expired prometheus.Counter
}

func newNixlMetrics(reg prometheus.Registerer, model string) *nixlMetrics {
	f := promauto{reg: reg, labels: prometheus.Labels{"model_name": model, "engine": "0"}}
	return &nixlMetrics{
		xferTime: f.histogram("vllm:nixl_xfer_time_seconds", "Histogram of transfer duration for NIXL KV Cache transfers.", kvTransferBuckets),
		bytes:    f.histogram("vllm:nixl_bytes_transferred", "Histogram of bytes transferred per NIXL KV Cache transfers.", kvBytesBuckets),
		failed:   f.counter("vllm:nixl_num_failed_transfers_total", "Number of failed NIXL KV Cache transfers."),
		expired:  f.counter("vllm:nixl_num_kv_expired_reqs_total", "Number of requests that had their KV expire."),
	}
}

// sglangPDMetrics are SGLang's disaggregation series.
type sglangPDMetrics struct {
	transferQueue, inflightQueue    prometheus.Gauge
	latencyMs, speedGBs, totalMB    prometheus.Gauge
	bootstrapFailed, transferFailed prometheus.Counter
}

func newSGLangPDMetrics(reg prometheus.Registerer, model string) *sglangPDMetrics {
	f := promauto{reg: reg, labels: prometheus.Labels{"model_name": model}}
	return &sglangPDMetrics{
		transferQueue:   f.gauge("sglang:num_decode_transfer_queue_reqs", "The number of requests in the decode transfer queue."),
		inflightQueue:   f.gauge("sglang:num_prefill_inflight_queue_reqs", "The number of requests in the prefill inflight queue."),
		latencyMs:       f.gauge("sglang:kv_transfer_latency_ms", "The transfer latency of the KV cache in ms."),
		speedGBs:        f.gauge("sglang:kv_transfer_speed_gb_s", "The transfer speed of the KV cache in GB/s."),
		totalMB:         f.gauge("sglang:kv_transfer_total_mb", "The total size of the KV cache transferred in MB."),
		bootstrapFailed: f.counter("sglang:num_bootstrap_failed_reqs_total", "The number of bootstrap failed requests."),
		transferFailed:  f.counter("sglang:num_transfer_failed_reqs_total", "The number of transfer failed requests."),
	}
}

// recordTransfer reports one KV transfer received by this engine.
func (e *Engine) recordTransfer(connector string, tokens int, d time.Duration) {
	e.simm.transfers.WithLabelValues(connector).Inc()
	e.simm.transferTokens.WithLabelValues(connector).Add(float64(tokens))
	e.simm.transferSeconds.WithLabelValues(connector).Observe(d.Seconds())
	bytes := float64(tokens) * e.profile.Model.KVBytesPerToken()
	if e.nixlm != nil && connector == ConnectorNixl {
		e.nixlm.xferTime.Observe(d.Seconds())
		e.nixlm.bytes.Observe(bytes)
	}
	if e.sgpd != nil {
		e.sgpd.latencyMs.Set(float64(d) / float64(time.Millisecond))
		e.sgpd.totalMB.Set(bytes / 1e6)
		if d > 0 {
			e.sgpd.speedGBs.Set(bytes / 1e9 / d.Seconds())
		}
	}
}

// recordTransferFailure counts a transfer or store lookup that failed.
func (e *Engine) recordTransferFailure(connector string) {
	e.simm.transferFailures.WithLabelValues(connector).Inc()
	if e.nixlm != nil && connector == ConnectorNixl {
		e.nixlm.failed.Inc()
	}
	if e.sgpd != nil {
		e.sgpd.bootstrapFailed.Inc()
	}
}
