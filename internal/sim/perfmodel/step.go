package perfmodel

import "time"

// Batch describes the work of one engine step.
type Batch struct {
	// PrefillTokens is the number of prompt tokens computed in this step
	// (chunked prefill: a slice of one or more prompts).
	PrefillTokens int
	// PrefillContext is the sum, over prefilled tokens, of the tokens each
	// attends to (its position in the sequence).
	PrefillContext float64
	// PrefillKVRead is the number of already-cached tokens whose KV the
	// prefill chunks read (cached prefix plus earlier chunks).
	PrefillKVRead int
	// DecodeSeqs is the number of sequences producing one token.
	DecodeSeqs int
	// DecodeContext is the sum of the context lengths of those sequences.
	DecodeContext int
}

// Tokens is the number of tokens the step feeds through the model.
func (b Batch) Tokens() int { return b.PrefillTokens + b.DecodeSeqs }

// StepTime is the modelled duration of one forward pass over the batch.
func (p *Profile) StepTime(b Batch) time.Duration {
	if b.Tokens() == 0 {
		return 0
	}
	m := p.Model
	tp := float64(p.TensorParallel)
	flops := m.linearFLOPsPerToken()*float64(b.Tokens()) +
		m.attentionFLOPsPerContextToken()*(b.PrefillContext+float64(b.DecodeContext))
	computeSec := flops / (tp * p.GPU.DenseTFLOPS * 1e12 * p.ComputeEfficiency)

	kvTokens := float64(b.DecodeContext + b.PrefillKVRead + b.Tokens())
	bytes := m.WeightBytes() + kvTokens*m.KVBytesPerToken()
	memorySec := bytes / (tp * p.GPU.HBMGBps * 1e9 * p.BandwidthEfficiency)

	sec := max(computeSec, memorySec)
	if p.TensorParallel > 1 {
		sec += p.tensorParallelSeconds(b.Tokens())
	}
	return p.StepOverhead + time.Duration(sec*float64(time.Second))
}

// tensorParallelSeconds is the cost of the two all-reduces per layer that
// tensor parallelism adds: a fixed latency each plus the activations moved.
func (p *Profile) tensorParallelSeconds(tokens int) float64 {
	m := p.Model
	allReduces := float64(2 * m.Layers)
	tp := float64(p.TensorParallel)
	// A ring all-reduce moves 2(tp-1)/tp of the activation bytes per GPU.
	bytes := float64(tokens*m.Hidden) * m.DTypeBytes * 2 * (tp - 1) / tp
	return allReduces * (p.AllReduceLatency.Seconds() + bytes/(p.GPU.InterconnGBs*1e9))
}

// PrefillTime is the time to prefill n new tokens after cached tokens of
// context on an otherwise idle engine, chunked by the step token budget.
func (p *Profile) PrefillTime(cached, n, budget int) time.Duration {
	var total time.Duration
	done := 0
	for done < n {
		chunk := min(budget, n-done)
		start := cached + done
		total += p.StepTime(Batch{
			PrefillTokens:  chunk,
			PrefillContext: ContextSum(start, chunk),
			PrefillKVRead:  start,
		})
		done += chunk
	}
	return total
}

// ContextSum is the attention span summed over tokens at positions
// start+1 .. start+n (each token attends to itself and all before it).
func ContextSum(start, n int) float64 {
	s, k := float64(start), float64(n)
	return k*s + k*(k+1)/2
}

// KVTransferTime is the time to move the KV cache of n tokens over the
// disaggregation link.
func (p *Profile) KVTransferTime(n int) time.Duration {
	if p.KVLinkGBps <= 0 || n <= 0 {
		return 0
	}
	sec := float64(n) * p.Model.KVBytesPerToken() / (p.KVLinkGBps * 1e9)
	return p.KVTransferOverhead + time.Duration(sec*float64(time.Second))
}

// KVCacheBlocks is the number of KV blocks that fit in accelerator memory
// after weights and the activation reserve, as vLLM sizes its cache from
// gpu_memory_utilization.
func (p *Profile) KVCacheBlocks(blockSize int) int {
	const gib = 1 << 30
	tp := float64(p.TensorParallel)
	budget := tp*p.GPU.MemoryGiB*gib*p.GPUMemoryUtilization -
		p.Model.WeightBytes() - tp*p.ActivationReserveGiB*gib
	if budget <= 0 || blockSize <= 0 {
		return 0
	}
	return int(budget / (p.Model.KVBytesPerToken() * float64(blockSize)))
}
