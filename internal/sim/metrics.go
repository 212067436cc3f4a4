package sim

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Histogram buckets as the engines define them.
var (
	ttftBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
		2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	itlBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
		2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	requestBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
		40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
)

// tokenBuckets is 1-2-5 up to the context length, as vLLM builds them.
func tokenBuckets(maxLen int) []float64 {
	var out []float64
	for exp := 1.0; ; exp *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := m * exp
			if v > float64(maxLen) {
				return out
			}
			out = append(out, v)
		}
	}
}

// vllmMetrics exposes the vllm:* series. Labels: model_name and engine
// (the engine core index, always "0" here).
type vllmMetrics struct {
	running, waiting, kvUsage          prometheus.Gauge
	preemptions, promptTok, genTok     prometheus.Counter
	prefixQueries, prefixHits          prometheus.Counter
	success                            *prometheus.CounterVec
	ttft, itl, tpot, e2e, queue        prometheus.Histogram
	inference, prefill, decode, rtpot  prometheus.Histogram
	promptLen, genLen, maxTokens, iter prometheus.Histogram
	lora                               *prometheus.GaugeVec
	maxLoRAs                           string
	waitingBy                          *prometheus.GaugeVec
	extQueries, extHits                prometheus.Counter
	sim                                *simMetrics

	mu       sync.Mutex
	lastLoRA [2]string // running and waiting adapters of the current series
}

func newVLLMMetrics(reg prometheus.Registerer, model string, c Config, numBlocks int, sim *simMetrics) *vllmMetrics {
	l := prometheus.Labels{"model_name": model, "engine": "0"}
	f := promauto{reg: reg, labels: l}
	m := &vllmMetrics{
		running:       f.gauge("vllm:num_requests_running", "Number of requests in model execution batches."),
		waiting:       f.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
		kvUsage:       f.gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."),
		preemptions:   f.counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine."),
		promptTok:     f.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
		genTok:        f.counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
		prefixQueries: f.counter("vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."),
		prefixHits:    f.counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."),
		success:       f.counterVec("vllm:request_success_total", "Count of successfully processed requests.", "finished_reason"),
		ttft:          f.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttftBuckets),
		itl:           f.histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itlBuckets),
		tpot:          f.histogram("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds (deprecated alias of inter-token latency).", itlBuckets),
		rtpot:         f.histogram("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", itlBuckets),
		e2e:           f.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", requestBuckets),
		queue:         f.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", requestBuckets),
		inference:     f.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", requestBuckets),
		prefill:       f.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", requestBuckets),
		decode:        f.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", requestBuckets),
		promptLen:     f.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenBuckets(c.MaxModelLen)),
		genLen:        f.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", tokenBuckets(c.MaxModelLen)),
		maxTokens:     f.histogram("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tokenBuckets(c.MaxModelLen)),
		iter:          f.histogram("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", tokenBuckets(c.MaxNumBatchedTokens)),
		maxLoRAs:      strconv.Itoa(c.MaxLoRAs),
		waitingBy: f.gaugeVec("vllm:num_requests_waiting_by_reason", "Number of waiting requests by reason: capacity, or deferred (here: receiving their KV).",
			"reason"),
		sim: sim,
	}
	if c.KVConnector != ConnectorNone {
		m.extQueries = f.counter("vllm:external_prefix_cache_queries_total", "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.")
		m.extHits = f.counter("vllm:external_prefix_cache_hits_total", "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.")
	}
	m.lora = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:lora_requests_info", Help: "Running stats on lora requests."},
		[]string{"max_lora", "running_lora_adapters", "waiting_lora_adapters"})
	reg.MustRegister(m.lora)
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "vllm:cache_config_info", Help: "Information of the LLMEngine CacheConfig",
		ConstLabels: prometheus.Labels{"block_size": strconv.Itoa(c.BlockSize), "cache_dtype": "auto",
			"enable_prefix_caching": pyBool(c.prefixCaching()), "gpu_memory_utilization": strconv.FormatFloat(c.GPUMemoryUtilization, 'f', -1, 64),
			"num_gpu_blocks": strconv.Itoa(numBlocks), "num_cpu_blocks": "0", "prefix_caching_hash_algo": "sha256_cbor", "engine": "0"}})
	info.Set(1)
	reg.MustRegister(info)
	m.lora.WithLabelValues(m.maxLoRAs, "", "").Set(float64(time.Now().Unix()))
	return m
}

func pyBool(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

func (m *vllmMetrics) Step(s engine.StepStats) {
	m.running.Set(float64(s.Running))
	m.waiting.Set(float64(s.Waiting))
	m.waitingBy.WithLabelValues("capacity").Set(float64(s.Waiting - s.WaitingForKV))
	m.waitingBy.WithLabelValues("deferred").Set(float64(s.WaitingForKV))
	m.kvUsage.Set(s.KVUsage)
	m.sim.step(s)
	if s.StateOnly {
		return
	}
	if m.extQueries != nil {
		m.extQueries.Add(float64(s.ExternalQueries))
		m.extHits.Add(float64(s.ExternalHits))
	}
	m.preemptions.Add(float64(s.Preemptions))
	m.promptTok.Add(float64(s.PromptTokens))
	m.genTok.Add(float64(s.GenerationTokens))
	m.prefixQueries.Add(float64(s.PrefixQueries))
	m.prefixHits.Add(float64(s.PrefixHits))
	m.iter.Observe(float64(s.PromptTokens + s.GenerationTokens))
	for _, r := range s.ScheduledRequests {
		m.queue.Observe(r.QueueTime)
	}
	cur := [2]string{strings.Join(s.RunningLoRAs, ","), strings.Join(s.WaitingLoRAs, ",")}
	m.mu.Lock()
	if cur != m.lastLoRA {
		// The new series goes in before the old one goes, so that a
		// scrape never finds none.
		m.lora.WithLabelValues(m.maxLoRAs, cur[0], cur[1]).Set(float64(time.Now().Unix()))
		m.lora.DeleteLabelValues(m.maxLoRAs, m.lastLoRA[0], m.lastLoRA[1])
		m.lastLoRA = cur
	}
	m.mu.Unlock()
}

func (m *vllmMetrics) FirstToken(ttft float64) { m.ttft.Observe(ttft) }

func (m *vllmMetrics) Token(itl float64) {
	m.itl.Observe(itl)
	m.tpot.Observe(itl)
}

func (m *vllmMetrics) Finished(r engine.RequestStats) {
	m.success.WithLabelValues(string(r.Finish)).Inc()
	m.e2e.Observe(r.E2E)
	m.inference.Observe(r.E2E - r.QueueTime)
	m.prefill.Observe(r.PrefillTime)
	m.decode.Observe(r.DecodeTime)
	m.promptLen.Observe(float64(r.PromptTokens))
	m.genLen.Observe(float64(r.GenerationTokens))
	if r.MaxTokens > 0 {
		m.maxTokens.Observe(float64(r.MaxTokens))
	}
	if r.GenerationTokens > 1 {
		m.rtpot.Observe(r.DecodeTime / float64(r.GenerationTokens-1))
	}
}

// promauto registers metrics with constant labels on one registry.
type promauto struct {
	reg    prometheus.Registerer
	labels prometheus.Labels
}

func (p promauto) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: p.labels})
	p.reg.MustRegister(g)
	return g
}

func (p promauto) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: p.labels})
	p.reg.MustRegister(c)
	return c
}

func (p promauto) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: p.labels}, labels)
	p.reg.MustRegister(g)
	return g
}

func (p promauto) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: p.labels}, labels)
	p.reg.MustRegister(c)
	return c
}

func (p promauto) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: p.labels})
	p.reg.MustRegister(h)
	return h
}
