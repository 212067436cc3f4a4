// Package enginestate scrapes every endpoint's Prometheus /metrics and
// /v1/models each interval with bounded concurrency and stores the result
// on the endpoint.
package enginestate

import (
	"bytes"
	"strconv"
)

// series names per engine.
type names struct {
	waiting, running, kv, ttft, tpot string
}

var (
	vllmNames   = names{"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc", "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds"}
	sglangNames = names{"sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage", "sglang:time_to_first_token_seconds", "sglang:inter_token_latency_seconds"}
)

// sample is what one scrape reads: gauges summed across label sets, and
// histogram sums and counts.
type sample struct {
	waiting, running, kv               float64
	ttftSum, ttftCount, tpotSum, tpotN float64
	kvSeen                             bool
}

// parseMetrics reads the needed series from Prometheus text exposition,
// skipping everything else without allocating.
func parseMetrics(b []byte, n names) sample {
	var s sample
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			line, b = b, nil
		} else {
			line, b = b[:i], b[i+1:]
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		name := line[:end]
		rest := line[end:]
		if rest[0] == '{' {
			j := bytes.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(string(fields[0]), 64)
		if err != nil || v != v {
			continue
		}
		switch string(name) {
		case n.waiting:
			s.waiting += v
		case n.running:
			s.running += v
		case n.kv:
			s.kv = max(s.kv, v)
			s.kvSeen = true
		case n.ttft + "_sum":
			s.ttftSum += v
		case n.ttft + "_count":
			s.ttftCount += v
		case n.tpot + "_sum":
			s.tpotSum += v
		case n.tpot + "_count":
			s.tpotN += v
		}
	}
	return s
}
