package autoscaling

import (
	"math"
)

// podReadings are one metric's values over the pods of a scaling unit.
type podReadings struct {
	// values are the per-pod values of ready pods that gave one.
	values []float64
	// missing counts ready pods that gave no usable value (scrape failed,
	// series absent, NaN, counter reset, first sample of a rate).
	missing int
	// unready counts pods that exist but are not ready (starting,
	// restarting): they carry no load yet.
	unready int
}

// metricReading is what a source saw for one metric: per-pod readings, or
// one value for the whole target (an external source such as Prometheus).
type metricReading struct {
	pods  *podReadings
	total *float64
	// external names the query of a whole-target source (set with or
	// without a value); readings with the same name are the same value.
	external string
	// err says why the reading has no usable value, for status.
	err error
}

// recommendInput is everything one metric's recommendation depends on.
type recommendInput struct {
	current   int32
	target    float64
	tolerance float64
	reading   metricReading
	// podsPerReplica is how many scraped pods one replica has (entry pods of
	// a serving group, or the groups carrying a role), at least 1.
	podsPerReplica float64
}

// recommendOne returns the replicas one metric asks for, and false when the
// metric gave nothing to decide on.
//
// Per-pod metrics follow the Horizontal Pod Autoscaler: the usage ratio is the
// pods' mean over the target; within tolerance of 1 nothing changes. Pods
// without a value count as being exactly at the target when scaling down and
// as idle when scaling up (and are left out at exactly the target); unready
// pods count as idle when scaling up. If
// those assumptions flip the direction or bring the ratio within tolerance,
// the count stays. The count in pods is turned into replicas by dividing by
// podsPerReplica.
func recommendOne(in recommendInput) (int32, bool) {
	if !(in.target > 0) {
		return 0, false
	}
	if t := in.reading.total; t != nil {
		if math.IsNaN(*t) || math.IsInf(*t, 0) || *t < 0 {
			return 0, false
		}
		desired := *t / in.target
		if in.current > 0 && math.Abs(desired/float64(in.current)-1) <= in.tolerance {
			return in.current, true
		}
		return clampInt32(math.Ceil(desired - 1e-9)), true
	}
	p := in.reading.pods
	if p == nil || len(p.values) == 0 {
		return 0, false
	}
	var sum float64
	for _, v := range p.values {
		sum += v
	}
	n := float64(len(p.values))
	ratio := sum / n / in.target
	ppr := max(in.podsPerReplica, 1)
	toReplicas := func(pods float64) int32 { return clampInt32(math.Ceil(pods/ppr - 1e-9)) }

	up := ratio > 1
	if p.missing == 0 && !(up && p.unready > 0) {
		if math.Abs(ratio-1) <= in.tolerance {
			return in.current, true
		}
		return toReplicas(math.Ceil(ratio*n - 1e-9)), true
	}
	switch {
	case p.missing > 0 && ratio < 1:
		sum += float64(p.missing) * in.target
		n += float64(p.missing)
	case p.missing > 0 && up:
		n += float64(p.missing)
	}
	if up && p.unready > 0 {
		n += float64(p.unready)
	}
	newRatio := sum / n / in.target
	if math.Abs(newRatio-1) <= in.tolerance || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return in.current, true
	}
	desired := toReplicas(math.Ceil(newRatio*n - 1e-9))
	if (newRatio < 1 && desired > in.current) || (newRatio > 1 && desired < in.current) {
		return in.current, true
	}
	return desired, true
}

// recommend combines the metrics of a unit: the largest count any metric
// asks for, within [lo, hi]. A count outside the bounds is brought inside
// first. With no usable metric the count stays (ok is false).
func recommend(current, lo, hi int32, perMetric []int32, anyOK bool) (int32, bool) {
	if current < lo {
		return lo, anyOK
	}
	if current > hi {
		return hi, anyOK
	}
	if !anyOK {
		return current, false
	}
	out := int32(0)
	for _, v := range perMetric {
		out = max(out, v)
	}
	return min(max(out, lo), hi), true
}

func clampInt32(f float64) int32 {
	switch {
	case math.IsNaN(f) || f < 0:
		return 0
	case f > math.MaxInt32:
		return math.MaxInt32
	}
	return int32(f)
}
