// Package autoscalebench is the trace-driven autoscaling benchmark: it
// replays a request-rate trace (a day's shape with a burst and an idle
// night, compressed) against a model on the local platform, once per
// scaling configuration, each on a fresh platform, and reports the GPU cost
// (replica-seconds), TTFT, SLO attainment, lost requests and the phases of
// every cold start, from timestamps read from the client, the API server
// and the router.
package autoscalebench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Trace is a request-rate curve over [0, Duration). Rates are in requests
// per second of wall time.
//
// Its shape, as fractions of Duration:
//
//	[0, DayEnd)            day: Base·(Floor + (1-Floor)·sin(π t / DayEnd))
//	[BurstAt, +BurstLen)   burst: BurstFactor × the day's rate (a step)
//	[DayEnd, NightEnd)     night: no request at all
//	[NightEnd, 1)          next morning: a linear ramp from MorningFrom·Base
//	                       to MorningTo·Base
type Trace struct {
	Duration    time.Duration
	Base        float64 // the day's highest rate without the burst
	Floor       float64 // the day's rate at its start and end, as a share of Base
	DayEnd      float64
	BurstAt     float64
	BurstLen    float64
	BurstFactor float64
	NightEnd    float64
	MorningFrom float64
	MorningTo   float64
}

// DefaultTrace is the benchmark's trace over d with the day's top rate base.
func DefaultTrace(d time.Duration, base float64) Trace {
	return Trace{
		Duration: d, Base: base, Floor: 0.15,
		DayEnd: 0.42, BurstAt: 0.27, BurstLen: 0.11, BurstFactor: 5,
		NightEnd: 0.80, MorningFrom: 0.1, MorningTo: 0.6,
	}
}

// Validate reports a trace whose phases are out of order.
func (tr Trace) Validate() error {
	switch {
	case tr.Duration <= 0:
		return fmt.Errorf("trace duration %s must be positive", tr.Duration)
	case tr.Base <= 0 || math.IsNaN(tr.Base) || math.IsInf(tr.Base, 0):
		return fmt.Errorf("trace base rate %v must be positive", tr.Base)
	case !(0 < tr.DayEnd && tr.DayEnd <= tr.NightEnd && tr.NightEnd <= 1):
		return fmt.Errorf("trace phases out of order: day end %v, night end %v", tr.DayEnd, tr.NightEnd)
	case tr.BurstLen < 0 || tr.BurstAt < 0 || tr.BurstAt+tr.BurstLen > tr.DayEnd:
		return fmt.Errorf("the burst [%v, %v) must lie within the day [0, %v)", tr.BurstAt, tr.BurstAt+tr.BurstLen, tr.DayEnd)
	case tr.BurstFactor < 1:
		return fmt.Errorf("burst factor %v must be at least 1", tr.BurstFactor)
	}
	return nil
}

func (tr Trace) at(frac float64) time.Duration {
	return time.Duration(frac * float64(tr.Duration))
}

// Burst is the burst's interval.
func (tr Trace) Burst() (from, to time.Duration) {
	return tr.at(tr.BurstAt), tr.at(tr.BurstAt + tr.BurstLen)
}

// Night is the idle interval.
func (tr Trace) Night() (from, to time.Duration) {
	return tr.at(tr.DayEnd), tr.at(tr.NightEnd)
}

// Rate is the request rate at t.
func (tr Trace) Rate(t time.Duration) float64 {
	if t < 0 || t >= tr.Duration {
		return 0
	}
	f := float64(t) / float64(tr.Duration)
	switch {
	case f < tr.DayEnd:
		r := tr.Base * (tr.Floor + (1-tr.Floor)*math.Sin(math.Pi*f/tr.DayEnd))
		if f >= tr.BurstAt && f < tr.BurstAt+tr.BurstLen {
			r *= tr.BurstFactor
		}
		return r
	case f < tr.NightEnd:
		return 0
	default:
		span := 1 - tr.NightEnd
		x := 0.0
		if span > 0 {
			x = (f - tr.NightEnd) / span
		}
		return tr.Base * (tr.MorningFrom + (tr.MorningTo-tr.MorningFrom)*x)
	}
}

// Peak is the highest rate of the trace (sampled every 100 ms).
func (tr Trace) Peak() float64 {
	peak := 0.0
	for t := time.Duration(0); t < tr.Duration; t += 100 * time.Millisecond {
		peak = max(peak, tr.Rate(t))
	}
	return peak
}

// Arrivals draws the send times of a non-homogeneous Poisson process with
// the trace's rate (by thinning), reproducibly from seed: every
// configuration replays the same requests at the same offsets.
func (tr Trace) Arrivals(seed uint64) []time.Duration {
	peak := tr.Peak()
	if peak <= 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []time.Duration
	t := 0.0
	end := tr.Duration.Seconds()
	for {
		t += rng.ExpFloat64() / peak
		if t >= end {
			return out
		}
		at := time.Duration(t * float64(time.Second))
		if rng.Float64()*peak < tr.Rate(at) {
			out = append(out, at)
		}
	}
}

// Expected is the integral of the rate over [from, to): the mean number of
// arrivals.
func (tr Trace) Expected(from, to time.Duration) float64 {
	const step = 10 * time.Millisecond
	sum := 0.0
	for t := from; t < to; t += step {
		sum += tr.Rate(t+step/2) * step.Seconds()
	}
	return sum
}
