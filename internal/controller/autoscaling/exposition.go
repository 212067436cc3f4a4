package autoscaling

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// seriesKind is how a metric family's values turn into a per-pod value.
type seriesKind int

const (
	kindGauge     seriesKind = iota // the value now, summed over label sets
	kindCounter                     // the rate per second since the last scrape
	kindHistogram                   // a quantile of the observations within a window
)

// equivalents are the names one signal has across engines. A metric is
// looked up by its own name first, then by the other names of its group,
// so that a policy written for vLLM also reads SGLang pods and a generic
// name reads either.
var equivalents = [][]string{
	{"num_requests_waiting", "vllm:num_requests_waiting", "sglang:num_queue_reqs"},
	{"num_requests_running", "vllm:num_requests_running", "sglang:num_running_reqs"},
	{"kv_cache_usage", "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"},
	{"time_to_first_token_seconds", "vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"},
	{"inter_token_latency_seconds", "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds", "sglang:inter_token_latency_seconds"},
	{"e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds", "sglang:e2e_request_latency_seconds"},
	{"request_queue_time_seconds", "vllm:request_queue_time_seconds", "sglang:queue_time_seconds"},
	{"prompt_tokens", "vllm:prompt_tokens", "sglang:prompt_tokens"},
	{"generation_tokens", "vllm:generation_tokens", "sglang:generation_tokens"},
	{"requests_finished", "vllm:request_success", "sglang:num_requests"},
}

// candidateNames are the family names tried for name, in order: the name,
// the name with "_total" (how counters are exposed), then its equivalents.
func candidateNames(name string) []string {
	base := strings.TrimSuffix(name, "_total")
	out := []string{name}
	if base != name {
		out = append(out, base)
	} else {
		out = append(out, name+"_total")
	}
	for _, group := range equivalents {
		for _, n := range group {
			if n != base {
				continue
			}
			for _, alt := range group {
				if alt != base {
					out = append(out, alt, alt+"_total")
				}
			}
		}
	}
	return out
}

// maxExpositionBytes bounds what is read from one endpoint.
const maxExpositionBytes = 8 << 20

// parseExposition parses Prometheus text exposition.
func parseExposition(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(io.LimitReader(r, maxExpositionBytes))
}

// findFamily returns the family serving name, if any.
func findFamily(fams map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	for _, n := range candidateNames(name) {
		if f, ok := fams[n]; ok && len(f.GetMetric()) > 0 {
			return f, true
		}
	}
	return nil, false
}

func kindOf(f *dto.MetricFamily) (seriesKind, error) {
	switch f.GetType() {
	case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		return kindGauge, nil
	case dto.MetricType_COUNTER:
		return kindCounter, nil
	case dto.MetricType_HISTOGRAM:
		return kindHistogram, nil
	}
	return 0, fmt.Errorf("metric %s has unsupported type %s", f.GetName(), f.GetType())
}

// scalarOf sums a gauge or counter family over its label sets. A NaN,
// infinite or negative value makes the reading unusable.
func scalarOf(f *dto.MetricFamily) (float64, error) {
	var sum float64
	for _, m := range f.GetMetric() {
		var v float64
		switch {
		case m.GetGauge() != nil:
			v = m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			v = m.GetUntyped().GetValue()
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, fmt.Errorf("metric %s has value %v", f.GetName(), v)
		}
		sum += v
	}
	return sum, nil
}

// bucketCounts are cumulative histogram counts by upper bound (the last is
// +Inf), merged over label sets.
type bucketCounts struct {
	bounds []float64
	counts []float64
}

func histogramOf(f *dto.MetricFamily) (bucketCounts, error) {
	merged := map[float64]float64{}
	for _, m := range f.GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue
		}
		sawInf := false
		for _, b := range h.GetBucket() {
			c := float64(b.GetCumulativeCount())
			if math.IsNaN(b.GetUpperBound()) {
				return bucketCounts{}, fmt.Errorf("histogram %s has a bad bucket", f.GetName())
			}
			merged[b.GetUpperBound()] += c
			sawInf = sawInf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !sawInf {
			merged[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	var out bucketCounts
	for ub := range merged {
		out.bounds = append(out.bounds, ub)
	}
	sort.Float64s(out.bounds)
	for _, ub := range out.bounds {
		out.counts = append(out.counts, merged[ub])
	}
	return out, nil
}

// delta is now minus past, bucket by bucket; ok is false when the layouts
// differ or a count went down (the engine restarted).
func (now bucketCounts) delta(past bucketCounts) (bucketCounts, bool) {
	if len(now.bounds) != len(past.bounds) {
		return bucketCounts{}, false
	}
	out := bucketCounts{bounds: now.bounds, counts: make([]float64, len(now.counts))}
	for i := range now.counts {
		if now.bounds[i] != past.bounds[i] || now.counts[i] < past.counts[i] {
			return bucketCounts{}, false
		}
		out.counts[i] = now.counts[i] - past.counts[i]
	}
	return out, true
}

// quantile estimates the q-quantile of cumulative counts by linear
// interpolation inside the bucket holding it. No observations give 0 (an
// idle engine has no latency to speak of); a quantile in the +Inf bucket
// gives the largest finite bound.
func (b bucketCounts) quantile(q float64) float64 {
	n := len(b.counts)
	if n == 0 || b.counts[n-1] <= 0 {
		return 0
	}
	total := b.counts[n-1]
	rank := q * total
	for i, c := range b.counts {
		if c < rank {
			continue
		}
		if math.IsInf(b.bounds[i], 1) {
			if i == 0 {
				return 0
			}
			return b.bounds[i-1]
		}
		lower, prev := 0.0, 0.0
		if i > 0 {
			lower, prev = b.bounds[i-1], b.counts[i-1]
		}
		if c == prev {
			return b.bounds[i]
		}
		return lower + (b.bounds[i]-lower)*(rank-prev)/(c-prev)
	}
	return b.bounds[n-1]
}
