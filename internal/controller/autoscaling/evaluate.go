package autoscaling

import (
	"errors"
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
	// external is set for a whole-target value (Prometheus).
	external bool
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
	if o.external {
		return s + " [prometheus]"
	}
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

// failed reports whether a metric has no value because reading it failed
// (not merely because there were no pods to read).
func (e evaluation) failed() bool {
	for _, m := range e.metrics {
		if !m.has && m.err != nil {
			return true
		}
	}
	return false
}

func (e evaluation) summary() string {
	parts := make([]string, 0, len(e.metrics))
	for _, m := range e.metrics {
		parts = append(parts, m.String())
	}
	return strings.Join(parts, ", ")
}

// readSummary lists only the metrics that were read or failed, leaving out
// pod metrics of a unit with no pods (at zero they are all "no data").
func (e evaluation) readSummary() string {
	var parts []string
	for _, m := range e.metrics {
		if m.has || m.err != nil {
			parts = append(parts, m.String())
		}
	}
	return strings.Join(parts, ", ")
}

// evaluate recommends replicas for one unit from its readings. As in the
// Horizontal Pod Autoscaler, while a metric gives no recommendation the
// others may scale up but not down: the unread metric might be the one
// that needs the replicas.
func evaluate(current, lo, hi int32, tolerance float64, metrics []workloadv1alpha1.AutoscalingPolicyMetric, readings []metricReading, podsPerReplica float64) evaluation {
	var e evaluation
	var wants []int32
	anyOK, anyMissing := false, false
	for i, m := range metrics {
		o := observed{name: m.Name, target: m.TargetValue.AsApproximateFloat64()}
		read := false
		if i < len(readings) {
			rd := readings[i]
			o.err = rd.err
			o.external = rd.external != ""
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
				anyOK, read = true, true
			}
		}
		anyMissing = anyMissing || !read
		e.metrics = append(e.metrics, o)
	}
	e.recommended, e.ok = recommend(current, lo, hi, wants, anyOK)
	if e.ok && anyMissing && e.recommended < current && current <= hi {
		e.recommended = current
	}
	return e
}

// pool merges the readings of several units metric by metric (the targets
// of a heterogeneous policy share one recommendation). Pod readings are
// pooled. Whole-target values are summed over distinct queries, so a query
// that every target names counts once; if any of them failed the metric has
// no value, since a partial sum would under-count. A metric read from pods
// for some targets and from Prometheus for others has no value either: the
// two cannot be combined.
func pool(perUnit [][]metricReading, n int) []metricReading {
	out := make([]metricReading, n)
	for i := 0; i < n; i++ {
		var (
			pr            *podReadings
			errs          []string
			external, pod bool
			sum           float64
			failed        bool
			seen          = map[string]bool{}
			firstExternal string
		)
		for _, rs := range perUnit {
			if i >= len(rs) {
				continue
			}
			r := rs[i]
			if r.err != nil {
				errs = append(errs, r.err.Error())
			}
			if r.external == "" {
				pod = true
				if r.pods != nil {
					if pr == nil {
						pr = &podReadings{}
					}
					pr.values = append(pr.values, r.pods.values...)
					pr.missing += r.pods.missing
					pr.unready += r.pods.unready
				}
				continue
			}
			external = true
			if firstExternal == "" {
				firstExternal = r.external
			}
			if r.total == nil {
				failed = true
			}
			if !seen[r.external] && r.total != nil {
				sum += *r.total
			}
			seen[r.external] = true
		}
		switch {
		case external && pod:
			errs = []string{"read from Prometheus for some targets and from pods for others; use one kind of source for every target"}
		case external:
			out[i].external = firstExternal
			if !failed {
				out[i].total = &sum
			}
		default:
			out[i].pods = pr
		}
		if len(errs) > 0 {
			out[i].err = errors.New(strings.Join(uniqueSorted(errs), "; "))
		}
	}
	return out
}

// uniqueSorted sorts ss and drops repeats (the same failing query named by
// several targets is reported once).
func uniqueSorted(ss []string) []string {
	sort.Strings(ss)
	out := ss[:0]
	for _, s := range ss {
		if len(out) == 0 || s != out[len(out)-1] {
			out = append(out, s)
		}
	}
	return out
}
