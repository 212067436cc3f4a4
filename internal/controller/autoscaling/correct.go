package autoscaling

import (
	"math"
	"time"
)

// Modes of a scaling decision, as shown in status.
const (
	ModeStable = "Stable"
	ModePanic  = "Panic"
)

// scaler turns a stream of recommendations for one scaling unit (a
// ModelServing, the sum of a heterogeneous target, or one role) into replica
// counts, under the policy's behaviour. Its memory is in process: a
// controller restart or a policy change starts a new scaler.
type scaler struct {
	b behavior
	// recs are the recommendations, corrected the counts decided.
	recs, corrected history
	// seed is the replica count seen when the scaler started. It counts as a
	// recommendation for scale-down only, so that a restarted controller (or
	// an edited policy) waits a full scale-down window before lowering
	// replicas, as if it had been watching all along.
	seed    sample
	seeded  bool
	panicTo time.Time
}

func newScaler(b behavior) *scaler { return &scaler{b: b} }

// decision is the outcome of one correction.
type decision struct {
	replicas int32
	mode     string
}

// inPanic reports whether panic mode holds at now.
func (s *scaler) inPanic(now time.Time) bool { return now.Before(s.panicTo) }

// correct returns the replicas for recommended given current and the bounds
// [lo, hi], and remembers both values.
func (s *scaler) correct(now time.Time, current, recommended, lo, hi int32) decision {
	if !s.seeded {
		s.seed, s.seeded = sample{now, current}, true
	}
	s.recs.trim(now.Add(-s.b.historyHorizon()))
	s.corrected.trim(now.Add(-s.b.historyHorizon()))
	s.recs.add(now, recommended)
	// The count before this decision is part of the period's counts, so
	// that the rate limits measure from the start of the period.
	s.corrected.add(now, current)

	p := s.b.panic
	if p.hold > 0 && current > 0 && int64(recommended)*100 >= int64(current)*int64(p.threshold) {
		s.panicTo = now.Add(p.hold)
	}
	var out int32
	mode := ModeStable
	switch {
	case s.inPanic(now):
		mode = ModePanic
		base, ok := s.corrected.minSince(now.Add(-p.period))
		if !ok || base == 0 {
			base = current
		}
		limit := int32(min(math.Ceil(float64(base)*(1+float64(p.percent)/100)), math.MaxInt32))
		out = max(min(recommended, limit), current) // never down in panic
	case recommended > current:
		up := s.b.up
		r, _ := s.recs.minSince(now.Add(-up.window))
		base, ok := s.corrected.minSince(now.Add(-up.period))
		if !ok {
			base = current
		}
		byInstances := int64(base) + int64(up.instances)
		byPercent := int64(base) + int64(math.Ceil(float64(base)*float64(up.percent)/100))
		limit := max(byInstances, byPercent)
		if up.and {
			limit = min(byInstances, byPercent)
		}
		// From zero a percentage allows nothing and an And policy would
		// keep the target at zero for ever: one replica is always allowed.
		limit = max(limit, 1)
		out = max(int32(min(int64(r), limit)), current)
	case recommended < current:
		down := s.b.down
		since := now.Add(-down.window)
		r, _ := s.recs.maxSince(since)
		if s.seed.at.After(since) {
			r = max(r, s.seed.v)
		}
		base, ok := s.corrected.maxSince(now.Add(-down.period))
		if !ok {
			base = current
		}
		byInstances := int64(base) - int64(down.instances)
		byPercent := int64(base) - int64(math.Floor(float64(base)*float64(down.percent)/100))
		floor := min(byInstances, byPercent)
		if down.and {
			floor = max(byInstances, byPercent)
		}
		out = min(int32(max(int64(r), floor)), current)
	default:
		out = current
	}
	out = min(max(out, lo), hi)
	s.corrected.add(now, out)
	return decision{replicas: out, mode: mode}
}

// force records v as both the recommendation and the decision at now, for a
// count set from outside the metrics (a scale-from-zero request): the
// scale-down window then starts from it.
func (s *scaler) force(now time.Time, v int32) {
	if !s.seeded {
		s.seed, s.seeded = sample{now, v}, true
	}
	s.recs.add(now, v)
	s.corrected.add(now, v)
}

// settle replaces the last decision with v, the count actually written
// after a repair across units (the disaggregated ratio), so that rate
// limits count from it.
func (s *scaler) settle(v int32) {
	if n := len(s.corrected); n > 0 {
		s.corrected[n-1].v = v
	}
}
