package engine

import "errors"

// complete applies a finished step at simulated time end.
func (e *Engine) complete(p *plan, end, dur float64) StepStats {
	e.clock = end
	stats := StepStats{StepDuration: dur, PrefixQueries: p.prefixQuery, PrefixHits: p.prefixHit,
		Preemptions: p.preempted, ScheduledRequests: p.scheduled}
	for _, r := range p.failed {
		r.stream.update(func(pr *Progress) { pr.Done, pr.Finish, pr.Err = true, FinishAbort, ErrTooLarge })
	}
	bs := e.o.BlockSize
	finished := false
	for _, it := range p.items {
		r, s := it.r, &it.r.state
		if r.cancelled.Load() {
			continue // swept at the next step
		}
		s.computed += it.n
		if it.prefill {
			stats.PromptTokens += it.n
		}
		if s.computed/bs > s.table.Committed {
			e.cache.Commit(&s.table, s.computed, tokenAt(r), s.extra, r.LoRA)
		}
		if s.computed < s.numTokens(r) {
			continue // a prefill chunk; no token yet
		}
		s.generated++
		stats.GenerationTokens++
		if s.generated == 1 {
			s.firstToken = end
			e.obs.FirstToken(end - s.arrival)
		} else {
			e.obs.Token(end - s.lastToken)
		}
		s.lastToken = end
		if s.generated >= len(r.Output) {
			e.finish(r, r.Finish, end)
			finished = true
			continue
		}
		gen := s.generated
		first := s.firstToken
		r.stream.update(func(pr *Progress) { pr.Generated, pr.FirstToken = gen, first })
	}
	if finished {
		keep := e.running[:0]
		for _, r := range e.running {
			if !r.stream.isDone() {
				keep = append(keep, r)
			}
		}
		e.running = keep
	}
	e.totals.Steps++
	e.totals.Preemptions += int64(p.preempted)
	e.totals.PromptTokens += int64(stats.PromptTokens)
	e.totals.GenerationTokens += int64(stats.GenerationTokens)
	e.totals.PrefixQueries += int64(p.prefixQuery)
	e.totals.PrefixHits += int64(p.prefixHit)
	e.totals.ExternalHits += int64(p.extHit)
	st := e.stateStats()
	stats.Running, stats.Waiting, stats.KVUsage, stats.UsedBlocks = st.Running, st.Waiting, st.KVUsage, st.UsedBlocks
	stats.RunningLoRAs, stats.WaitingLoRAs, stats.WaitingForKV = st.RunningLoRAs, st.WaitingLoRAs, st.WaitingForKV
	stats.HeldRequests, stats.HeldBlocks = st.HeldRequests, st.HeldBlocks
	stats.ExternalQueries, stats.ExternalHits = p.extQuery, p.extHit
	return stats
}

// finish ends a request: releases or holds its blocks, reports its stats
// and wakes its consumer.
func (e *Engine) finish(r *Request, reason FinishReason, end float64) {
	s := &r.state
	if r.HoldBlocks && reason != FinishAbort {
		e.held[r.ID] = r
	} else {
		e.cache.Release(&s.table)
	}
	if reason != FinishAbort {
		e.totals.FinishedRequests++
		st := RequestStats{LoRA: r.LoRA, PromptTokens: len(r.Prompt), GenerationTokens: s.generated,
			CachedTokens: s.cached, MaxTokens: r.MaxTokens, Finish: reason,
			QueueTime: s.firstSched - s.arrival, TTFT: s.firstToken - s.arrival,
			PrefillTime: s.firstToken - s.firstSched, DecodeTime: end - s.firstToken, E2E: end - s.arrival}
		e.obs.Finished(st)
	}
	var heldIDs []int
	if r.HoldBlocks && reason != FinishAbort {
		for _, b := range s.table.Blocks {
			heldIDs = append(heldIDs, int(b))
		}
	}
	gen, first := s.generated, s.firstToken
	var err error
	if reason == FinishAbort {
		err = errors.New("request aborted")
	}
	r.stream.update(func(pr *Progress) {
		pr.Generated, pr.FirstToken, pr.Finished, pr.Done, pr.Finish, pr.HeldBlocks, pr.Err =
			gen, first, end, true, reason, heldIDs, err
	})
}

func (s *Stream) isDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.progress.Done
}

func loraNames(rs []*Request) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rs {
		if r.LoRA != "" && !seen[r.LoRA] {
			seen[r.LoRA] = true
			out = append(out, r.LoRA)
		}
	}
	return out
}
