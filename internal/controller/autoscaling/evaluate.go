package autoscaling

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// requestsFor builds the source requests of metrics; a metric with no entry
// in sources is read from the pods under its own name.
func requestsFor(metrics []workloadv1alpha1.AutoscalingPolicyMetric, sources map[string]workloadv1alpha1.MetricSource) []metricRequest {
	out := make([]metricRequest, 0, len(metrics))
	for _, m := range metrics {
		out = append(out, metricRequest{key: m.Name, spec: sources[m.Name]})
	}
	return out
}

// observed is what one metric showed this cycle, for status and metrics.
type observed struct {
	name    string
	target  float64
	value   float64
	has     bool
	ready   int
	missing int
	unready int
	err     error
	// wants is the replicas this metric alone asks for.
	wants int32
}

func (o observed) String() string {
	if !o.has {
		msg := "no data"
		if o.err != nil {
			msg = o.err.Error()
		}
		return fmt.Sprintf("%s=? (%s)", o.name, msg)
	}
	s := fmt.Sprintf("%s=%s/%s", o.name, fmtFloat(o.value), fmtFloat(o.target))
	if o.ready > 0 || o.missing > 0 || o.unready > 0 {
		s += fmt.Sprintf(" [%d pods", o.ready)
		if o.missing > 0 {
			s += fmt.Sprintf(", %d missing", o.missing)
		}
		if o.unready > 0 {
			s += fmt.Sprintf(", %d unready", o.unready)
		}
		s += "]"
	}
	return s
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

// evaluation is one unit's recommendation this cycle.
type evaluation struct {
	recommended int32
	// ok is false when no metric gave a usable value.
	ok      bool
	metrics []observed
}

func (e evaluation) summary() string {
	parts := make([]string, 0, len(e.metrics))
	for _, m := range e.metrics {
		parts = append(parts, m.String())
	}
	return strings.Join(parts, ", ")
}

// evaluate recommends replicas for one unit from its readings.
func evaluate(current, lo, hi int32, tolerance float64, metrics []workloadv1alpha1.AutoscalingPolicyMetric, readings []metricReading, podsPerReplica float64) evaluation {
	var e evaluation
	var wants []int32
	anyOK := false
	for i, m := range metrics {
		o := observed{name: m.Name, target: m.TargetValue.AsApproximateFloat64()}
		if i < len(readings) {
			rd := readings[i]
			o.err = rd.err
			switch {
			case rd.total != nil:
				o.value, o.has = *rd.total, true
			case rd.pods != nil:
				o.ready, o.missing, o.unready = len(rd.pods.values), rd.pods.missing, rd.pods.unready
				if len(rd.pods.values) > 0 {
					var sum float64
					for _, v := range rd.pods.values {
						sum += v
					}
					o.value, o.has = sum/float64(len(rd.pods.values)), true
				}
			}
			if w, ok := recommendOne(recommendInput{current: current, target: o.target, tolerance: tolerance, reading: rd, podsPerReplica: podsPerReplica}); ok {
				o.wants = w
				wants = append(wants, w)
				anyOK = true
			}
		}
		e.metrics = append(e.metrics, o)
	}
	e.recommended, e.ok = recommend(current, lo, hi, wants, anyOK)
	return e
}

// pool merges the readings of several units metric by metric (the targets
// of a heterogeneous policy share one recommendation). Whole-target values
// are summed.
func pool(perUnit [][]metricReading, n int) []metricReading {
	out := make([]metricReading, n)
	for i := 0; i < n; i++ {
		var pr *podReadings
		var total *float64
		var errs []string
		for _, rs := range perUnit {
			if i >= len(rs) {
				continue
			}
			r := rs[i]
			if r.err != nil {
				errs = append(errs, r.err.Error())
			}
			if r.pods != nil {
				if pr == nil {
					pr = &podReadings{}
				}
				pr.values = append(pr.values, r.pods.values...)
				pr.missing += r.pods.missing
				pr.unready += r.pods.unready
			}
			if r.total != nil {
				t := *r.total
				if total != nil {
					t += *total
				}
				total = &t
			}
		}
		out[i] = metricReading{pods: pr, total: total}
		if total != nil {
			out[i].pods = nil
		}
		if len(errs) > 0 {
			sort.Strings(errs)
			out[i].err = fmt.Errorf("%s", strings.Join(errs, "; "))
		}
	}
	return out
}
