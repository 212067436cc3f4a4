package engine

import (
	"time"

	"github.com/kthena/kthena/internal/sim/perfmodel"
)

// item is one request's share of a step.
type item struct {
	r       *Request
	n       int
	prefill bool
}

type plan struct {
	items       []item
	batch       perfmodel.Batch
	preempted   int
	scheduled   []RequestStats
	prefixQuery int
	prefixHit   int
	failed      []*Request
	extQuery    int
	extHit      int
	// nextReady is the earliest readiness of a waiting request that is
	// not ready yet (0 when none).
	nextReady float64
}

// schedule picks the work of the next step: running sequences first (one
// token each when decoding, a chunk when prefilling), preempting from the
// back when blocks run out, then waiting requests while the token budget,
// max-num-seqs, LoRA slots and free blocks allow. It mirrors vLLM V1's
// scheduler with chunked prefill and recompute preemption.
func (e *Engine) schedule() *plan {
	p := &plan{}
	e.sweepCancelled()
	budget := e.o.MaxNumBatchedTokens
	fixedPrefill := e.o.FixedTTFT > 0

	for i := 0; i < len(e.running) && budget > 0; i++ {
		r := e.running[i]
		s := &r.state
		need := s.numTokens(r) - s.computed
		n := min(need, budget)
		if fixedPrefill && need > 1 {
			n = need
		}
		for !e.cache.Grow(&s.table, s.computed+n) {
			victim := e.running[len(e.running)-1]
			e.preempt(victim)
			p.preempted++
			if victim == r {
				n = 0
				break
			}
		}
		if n == 0 {
			break
		}
		e.addItem(p, r, n)
		budget -= n
	}

	if p.preempted == 0 {
		e.admitWaiting(p, budget)
	}
	if len(p.items) == 0 && len(e.running) == 0 && len(e.held) == 0 {
		// (With blocks held for remote decodes, wait for their release.)
		for i, r := range e.waiting {
			if r.state.readyAt <= e.clock {
				// Nothing fits even on an empty engine: fail this one
				// instead of spinning.
				e.waiting = append(e.waiting[:i], e.waiting[i+1:]...)
				p.failed = append(p.failed, r)
				break
			}
		}
	}
	for _, r := range e.waiting {
		if r.state.readyAt > e.clock && (p.nextReady == 0 || r.state.readyAt < p.nextReady) {
			p.nextReady = r.state.readyAt
		}
	}
	return p
}

func (e *Engine) admitWaiting(p *plan, budget int) {
	loras := map[string]bool{}
	for _, r := range e.running {
		if r.LoRA != "" {
			loras[r.LoRA] = true
		}
	}
	bs := e.o.BlockSize
	for idx := 0; idx < len(e.waiting) && budget > 0 && len(e.running) < e.o.MaxNumSeqs; {
		r := e.waiting[idx]
		s := &r.state
		if r.LoRA != "" && !loras[r.LoRA] && len(loras) >= max(e.o.MaxLoRAs, 1) {
			idx++ // keep its place; later requests may still fit
			continue
		}
		if s.readyAt > e.clock {
			idx++ // its KV is still arriving
			continue
		}
		numTokens := s.numTokens(r)
		local := 0
		if e.o.PrefixCaching {
			hashes := s.table.Hashes
			hashes = hashes[:min(len(hashes), (numTokens-1)/bs)]
			hit := e.cache.MatchPrefix(hashes)
			e.cache.AcquirePrefix(&s.table, hashes, hit)
			local = hit * bs
		}
		s.computed = local
		// KV from outside (a prefill engine or a shared store) covers the
		// prompt but for its last token; only a request that has not
		// generated yet uses it (a preempted one recomputes).
		ext := 0
		if s.generated == 0 {
			ext = r.ExternalTokens
			if r.RemotePrefill {
				ext = len(r.Prompt)
			}
			ext = min(ext, len(r.Prompt)-1)
		}
		s.computed = max(s.computed, ext)
		first := !s.scheduledOnce
		if first {
			p.prefixQuery += len(r.Prompt)
			p.prefixHit += local
			s.cached = s.computed
			if e.o.ExternalCache {
				p.extQuery += len(r.Prompt)
				p.extHit += max(ext-local, 0)
			}
		}
		need := numTokens - s.computed
		n := min(need, budget)
		if e.o.FixedTTFT > 0 {
			n = need
		}
		if !e.cache.Grow(&s.table, s.computed+n) {
			e.cache.Release(&s.table)
			s.computed = 0
			if first {
				p.prefixQuery -= len(r.Prompt)
				p.prefixHit -= local
				if e.o.ExternalCache {
					p.extQuery -= len(r.Prompt)
					p.extHit -= max(ext-local, 0)
				}
			}
			break
		}
		e.waiting = append(e.waiting[:idx], e.waiting[idx+1:]...)
		e.running = append(e.running, r)
		if r.LoRA != "" {
			loras[r.LoRA] = true
		}
		if !s.scheduledOnce {
			s.scheduledOnce = true
			s.firstSched = e.clock
			p.scheduled = append(p.scheduled, RequestStats{LoRA: r.LoRA, QueueTime: e.clock - s.arrival})
			cached := s.cached
			r.stream.update(func(pr *Progress) { pr.FirstScheduled, pr.CachedTokens = e.clock, cached })
		}
		e.addItem(p, r, n)
		budget -= n
	}
}

func (e *Engine) addItem(p *plan, r *Request, n int) {
	s := &r.state
	prefill := !(n == 1 && s.generated > 0) && !(n == 1 && r.RemotePrefill && s.generated == 0)
	if prefill {
		p.batch.PrefillTokens += n
		p.batch.PrefillContext += perfmodel.ContextSum(s.computed, n)
		p.batch.PrefillKVRead += s.computed
	} else {
		p.batch.DecodeSeqs++
		p.batch.DecodeContext += s.computed + 1
	}
	p.items = append(p.items, item{r: r, n: n, prefill: prefill})
}

// preempt frees a running request's blocks and puts it back at the head of
// the queue; it will recompute its prompt and output so far (its blocks stay
// cached until evicted, so the recompute often hits).
func (e *Engine) preempt(r *Request) {
	for i, x := range e.running {
		if x == r {
			e.running = append(e.running[:i], e.running[i+1:]...)
			break
		}
	}
	e.cache.Release(&r.state.table)
	r.state.computed = 0
	e.waiting = append([]*Request{r}, e.waiting...)
}

func (e *Engine) sweepCancelled() {
	keep := e.running[:0]
	for _, r := range e.running {
		if r.cancelled.Load() {
			e.finish(r, FinishAbort, e.clock)
			continue
		}
		keep = append(keep, r)
	}
	e.running = keep
	w := e.waiting[:0]
	for _, r := range e.waiting {
		if r.cancelled.Load() {
			e.finish(r, FinishAbort, e.clock)
			continue
		}
		w = append(w, r)
	}
	e.waiting = w
}

// stepDuration prices the plan with the roofline or the fixed overrides.
func (e *Engine) stepDuration(p *plan) time.Duration {
	if len(p.items) == 0 {
		return 0
	}
	hasPrefill, hasDecode := p.batch.PrefillTokens > 0, p.batch.DecodeSeqs > 0
	roofline := e.o.Profile.StepTime(p.batch)
	var d time.Duration
	if hasPrefill {
		d = roofline
		if e.o.FixedTTFT > 0 {
			d = e.o.FixedTTFT
		}
	}
	if hasDecode {
		dec := roofline
		if e.o.FixedITL > 0 {
			dec = e.o.FixedITL
		}
		d = max(d, dec)
	}
	return d
}
