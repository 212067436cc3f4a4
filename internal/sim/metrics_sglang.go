package sim

import (
	"sync"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// sglangMetrics exposes the sglang:* series (label model_name).
type sglangMetrics struct {
	running, queue, usage, usedTokens, hitRate, genTput prometheus.Gauge
	promptTok, genTok, cachedTok, requests              prometheus.Counter
	ttft, itl, e2e, queueTime                           prometheus.Histogram
	blockSize                                           int
	sim                                                 *simMetrics
	pd                                                  *sglangPDMetrics

	mu                   sync.Mutex
	hitQueries, hitsSeen float64
}

func newSGLangMetrics(reg prometheus.Registerer, model string, blockSize int, sim *simMetrics, pd *sglangPDMetrics) *sglangMetrics {
	f := promauto{reg: reg, labels: prometheus.Labels{"model_name": model}}
	return &sglangMetrics{
		running:    f.gauge("sglang:num_running_reqs", "The number of running requests."),
		queue:      f.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue."),
		usage:      f.gauge("sglang:token_usage", "The token usage."),
		usedTokens: f.gauge("sglang:num_used_tokens", "The number of used tokens."),
		hitRate:    f.gauge("sglang:cache_hit_rate", "The prefix cache hit rate."),
		genTput:    f.gauge("sglang:gen_throughput", "The generation throughput (token/s)."),
		promptTok:  f.counter("sglang:prompt_tokens_total", "Number of prefill tokens processed."),
		genTok:     f.counter("sglang:generation_tokens_total", "Number of generation tokens processed."),
		cachedTok:  f.counter("sglang:cached_tokens_total", "Number of cached prompt tokens."),
		requests:   f.counter("sglang:num_requests_total", "Number of requests processed."),
		ttft:       f.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttftBuckets),
		itl:        f.histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itlBuckets),
		e2e:        f.histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", requestBuckets),
		queueTime:  f.histogram("sglang:queue_time_seconds", "Histogram of queueing time in seconds.", requestBuckets),
		blockSize:  blockSize,
		sim:        sim,
		pd:         pd,
	}
}

func (m *sglangMetrics) Step(s engine.StepStats) {
	m.running.Set(float64(s.Running))
	m.queue.Set(float64(s.Waiting))
	m.usage.Set(s.KVUsage)
	m.usedTokens.Set(float64(s.UsedBlocks * m.blockSize))
	m.sim.step(s)
	if m.pd != nil {
		m.pd.transferQueue.Set(float64(s.WaitingForKV))
		m.pd.inflightQueue.Set(float64(s.HeldRequests))
	}
	if s.StateOnly {
		return
	}
	m.promptTok.Add(float64(s.PromptTokens))
	m.genTok.Add(float64(s.GenerationTokens))
	m.cachedTok.Add(float64(s.PrefixHits))
	for _, r := range s.ScheduledRequests {
		m.queueTime.Observe(r.QueueTime)
	}
	m.mu.Lock()
	m.hitQueries += float64(s.PrefixQueries)
	m.hitsSeen += float64(s.PrefixHits)
	if m.hitQueries > 0 {
		m.hitRate.Set(m.hitsSeen / m.hitQueries)
	}
	m.mu.Unlock()
}

func (m *sglangMetrics) FirstToken(ttft float64) { m.ttft.Observe(ttft) }
func (m *sglangMetrics) Token(itl float64)       { m.itl.Observe(itl) }

func (m *sglangMetrics) Finished(r engine.RequestStats) {
	m.requests.Inc()
	m.e2e.Observe(r.E2E)
	if r.DecodeTime > 0 && r.GenerationTokens > 1 {
		m.genTput.Set(float64(r.GenerationTokens-1) / r.DecodeTime)
	}
}
