package autoscaling

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Annotations the autoscaler reads.
const (
	// ScaleFromZeroAnnotation on a ModelServing asks the policy that scales
	// it for capacity now. Its value is the time of the request (RFC 3339).
	// The controller acts on a request later than the target's last scale
	// time in the policy's status (and, in its memory, later than the last
	// request it acted on), without waiting for its period. At zero it
	// scales to the wake size (below; at least max(1, minReplicas)); above
	// zero the wake size counts as a recommendation, so it can only raise
	// the count, at the scale-up pace. The scale-down window starts again
	// from it. The router sets it every second while it holds requests.
	ScaleFromZeroAnnotation = "autoscaling.kthena.io/scale-from-zero-requested-at"

	// ScaleFromZeroDemandAnnotation on a ModelServing, set with
	// ScaleFromZeroAnnotation, is how many requests the router has for the
	// target and cannot serve yet (held, plus released but unfinished while
	// it still holds some). The wake size is ⌈demand / requests per
	// replica⌉ within [max(1, minReplicas), maxReplicas]. Absent or not a
	// positive integer: the wake size is max(1, minReplicas).
	ScaleFromZeroDemandAnnotation = "autoscaling.kthena.io/scale-from-zero-demand"

	// RequestsPerReplicaAnnotation on an AutoscalingPolicy is how many
	// requests one replica takes at the policy's targets, for the wake size.
	// Without it, it is the sum of the targetValues of the policy's metrics
	// that count requests at the engine (num_requests_running and
	// num_requests_waiting, under any of their engine names): a replica at
	// its targets runs and queues that many. A policy with neither wakes to
	// max(1, minReplicas) whatever the demand.
	RequestsPerReplicaAnnotation = "autoscaling.kthena.io/requests-per-replica"

	// PausedAnnotation set to "true" on an AutoscalingPolicy stops it writing
	// replicas: the targets keep whatever count they have (manual scaling
	// then sticks) until the annotation is removed.
	PausedAnnotation = "autoscaling.kthena.io/paused"
)

// RequestScaleFromZero asks the autoscaler to bring the ModelServing key up
// from zero now, with no demand known (the wake size is then
// max(1, minReplicas)). It is RequestCapacity with demand 0.
func RequestScaleFromZero(ctx context.Context, c client.Client, key types.NamespacedName, at time.Time) error {
	return RequestCapacity(ctx, c, key, at, 0)
}

// RequestCapacity asks the autoscaler for capacity for demand requests that
// wait for the ModelServing key (0: unknown). It is the seam for the router
// (or any client with patch rights on modelservings): it sets
// ScaleFromZeroAnnotation to at and ScaleFromZeroDemandAnnotation to demand
// (removing it for 0) in one merge patch, so concurrent callers never
// conflict and the two values always travel together.
func RequestCapacity(ctx context.Context, c client.Client, key types.NamespacedName, at time.Time, demand int) error {
	var d any // null removes a demand left by an earlier request
	if demand > 0 {
		d = strconv.Itoa(demand)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
		ScaleFromZeroAnnotation:       at.UTC().Format(time.RFC3339Nano),
		ScaleFromZeroDemandAnnotation: d,
	}}})
	if err != nil {
		return err
	}
	ms := &workloadv1alpha1.ModelServing{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := c.Patch(ctx, ms, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("requesting capacity for %s: %w", key, err)
	}
	return nil
}

// wakeRequest is the time of a scale-from-zero request on ms, if any.
func wakeRequest(ms *workloadv1alpha1.ModelServing) (time.Time, bool) {
	v, ok := ms.Annotations[ScaleFromZeroAnnotation]
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// wakeDemand is the demand that came with ms's request; 0 if none.
func wakeDemand(ms *workloadv1alpha1.ModelServing) int {
	n, err := strconv.Atoi(ms.Annotations[ScaleFromZeroDemandAnnotation])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// wakePending reports whether ms carries a request later than lastScale.
func wakePending(ms *workloadv1alpha1.ModelServing, lastScale *metav1.Time) bool {
	t, ok := wakeRequest(ms)
	if !ok {
		return false
	}
	return lastScale == nil || t.After(lastScale.Time)
}

// wakeUp is a request for capacity a unit has not acted on yet.
type wakeUp struct {
	at     time.Time
	demand int
}

// collect adds ms's request to w if it is pending (later than lastScale)
// and newer than what u last acted on: a request that changed nothing
// (the count was already enough) must not keep raising the
// recommendation after the router stopped asking. Several targets (a
// heterogeneous policy) give the latest time and the largest demand,
// since the router sends one demand to every ModelServing behind a
// ModelServer.
func (w *wakeUp) collect(u *unit, ms *workloadv1alpha1.ModelServing, lastScale *metav1.Time) {
	if !wakePending(ms, lastScale) {
		return
	}
	t, _ := wakeRequest(ms)
	if !t.After(u.wokeAt) {
		return
	}
	if t.After(w.at) {
		w.at = t
	}
	w.demand = max(w.demand, wakeDemand(ms))
}

func (w wakeUp) pending() bool { return !w.at.IsZero() }

// why adds the demand to the metrics' summary of a scale.
func (w wakeUp) why(summary string) string {
	if !w.pending() || w.demand <= 0 {
		return summary
	}
	return joinNonEmpty([]string{fmt.Sprintf("%d requests waiting at the router", w.demand), summary})
}

// size is the replicas the demand needs at perReplica requests each, at
// least 1; perReplica 0 (unknown) gives 1.
func (w wakeUp) size(perReplica float64) int32 {
	if w.demand <= 0 || perReplica <= 0 {
		return 1
	}
	return int32(min(math.Ceil(float64(w.demand)/perReplica), math.MaxInt32))
}

// requestCounters are the generic names of the engine metrics that count
// requests, with which held requests are compared.
var requestCounters = []string{"num_requests_running", "num_requests_waiting"}

// requestsPerReplica is how many requests one replica takes at the
// policy's targets (see RequestsPerReplicaAnnotation); 0 if unknown.
func requestsPerReplica(pol *workloadv1alpha1.AutoscalingPolicy, metrics []workloadv1alpha1.AutoscalingPolicyMetric, sources map[string]workloadv1alpha1.MetricSource) float64 {
	if v, ok := pol.Annotations[RequestsPerReplicaAnnotation]; ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && !math.IsInf(f, 0) {
			return f
		}
	}
	sum := 0.0
	for _, m := range metrics {
		src := sources[m.Name]
		if src.Prometheus != nil {
			continue // a whole-target value of unknown meaning
		}
		name := m.Name
		if src.Pod != nil && src.Pod.Name != "" {
			name = src.Pod.Name
		}
		if countsRequests(name) {
			sum += m.TargetValue.AsApproximateFloat64()
		}
	}
	return sum
}

// countsRequests reports whether the series name is one of
// requestCounters under any of its engine names.
func countsRequests(name string) bool {
	for _, cand := range candidateNames(name) {
		for _, rc := range requestCounters {
			if cand == rc {
				return true
			}
		}
	}
	return false
}

func paused(p *workloadv1alpha1.AutoscalingPolicy) bool {
	return p.Annotations[PausedAnnotation] == "true"
}
