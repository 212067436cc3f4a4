package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/go-logr/logr"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// cycle is one evaluation of one policy.
type cycle struct {
	r      *Reconciler
	pol    *workloadv1alpha1.AutoscalingPolicy
	st     *policyState
	now    time.Time
	status workloadv1alpha1.AutoscalingPolicyStatus
	tol    float64
	log    logr.Logger
	// prom answers the cycle's Prometheus metrics, each query once.
	prom *promSource
}

func newCycle(r *Reconciler, pol *workloadv1alpha1.AutoscalingPolicy, st *policyState, now time.Time) *cycle {
	c := &cycle{r: r, pol: pol, st: st, now: now, status: *pol.Status.DeepCopy(), tol: float64(pol.Spec.TolerancePercent) / 100}
	c.status.ObservedGeneration = pol.Generation
	return c
}

func (c *cycle) run(ctx context.Context) error {
	c.log = ctrl.LoggerFrom(ctx)
	c.prom = newPromSource(c.r.prom, c.log)
	if other, err := c.claimedBy(ctx); err != nil {
		return err
	} else if other != "" {
		c.setCondition(ConditionReady, false, ReasonTargetConflict,
			fmt.Sprintf("a target is already scaled by the older AutoscalingPolicy %s; this policy writes nothing", other))
		return nil
	}
	if paused(c.pol) {
		c.setCondition(ConditionReady, false, ReasonPaused, "annotation "+PausedAnnotation+" is true: replicas are left as they are")
		return nil
	}
	spec := &c.pol.Spec
	switch {
	case spec.HomogeneousTarget != nil:
		return c.homogeneous(ctx)
	case spec.HeterogeneousTarget != nil:
		return c.heterogeneous(ctx)
	case spec.DisaggregatedTarget != nil:
		return c.disaggregated(ctx)
	}
	c.setCondition(ConditionReady, false, ReasonInvalidSpec, "no target set")
	return nil
}

// claimedBy returns the name of an older policy that scales one of this
// policy's ModelServings. Two policies never fight over a target: the
// oldest (by creation time, then name) owns it.
func (c *cycle) claimedBy(ctx context.Context) (string, error) {
	var list workloadv1alpha1.AutoscalingPolicyList
	if err := c.r.List(ctx, &list, client.InNamespace(c.pol.Namespace)); err != nil {
		return "", err
	}
	mine := map[string]bool{}
	for _, n := range targetNames(c.pol) {
		mine[n] = true
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == c.pol.UID || o.DeletionTimestamp != nil || !olderThan(o, c.pol) {
			continue
		}
		for _, n := range targetNames(o) {
			if mine[n] {
				return o.Name, nil
			}
		}
	}
	return "", nil
}

func olderThan(a, b *workloadv1alpha1.AutoscalingPolicy) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// getTarget reads a target ModelServing from the cache; nil if absent.
func (c *cycle) getTarget(ctx context.Context, name string) (*workloadv1alpha1.ModelServing, error) {
	ms := &workloadv1alpha1.ModelServing{}
	err := c.r.Get(ctx, types.NamespacedName{Namespace: c.pol.Namespace, Name: name}, ms)
	if apierrors.IsNotFound(err) {
		c.setCondition(ConditionTargetFound, false, ReasonTargetNotFound, fmt.Sprintf("ModelServing %s not found", name))
		c.setCondition(ConditionReady, false, ReasonTargetNotFound, fmt.Sprintf("ModelServing %s not found", name))
		return nil, nil
	}
	return ms, err
}

// noteExternal emits an event when a target's count differs from what the
// controller last wrote: someone else scaled it, and the cycle continues
// from their count.
func (c *cycle) noteExternal(u *unit, obj client.Object, what string, current int32) {
	if u.hasWritten && u.written != current {
		c.r.Recorder.Eventf(c.pol, corev1.EventTypeNormal, ReasonExternalScale,
			"%s was changed outside the policy from %d to %d; scaling continues from %d", what, u.written, current, current)
		c.r.Recorder.Eventf(obj, corev1.EventTypeNormal, ReasonExternalScale,
			"%s changed from %d to %d outside AutoscalingPolicy %s, which continues from %d", what, u.written, current, c.pol.Name, current)
	}
	u.written, u.hasWritten = current, true
}

// source reads a unit's metrics: pod metrics from its own scraper (which
// keeps per-pod baselines), Prometheus metrics through the cycle's queries.
func (c *cycle) source(u *unit) metricSource {
	return splitSource{pod: u.source, prom: c.prom}
}

// decide runs a unit's scaler, or answers a request for capacity: at zero
// the wake size (perReplica requests per replica) is written at once;
// above zero it is one more recommendation, so it raises the count at the
// scale-up pace and never lowers it.
func (c *cycle) decide(u *unit, current int32, ev evaluation, lo, hi int32, w wakeUp, perReplica float64) (decision, string) {
	if !w.pending() {
		d := u.scaler.correct(c.now, current, ev.recommended, lo, hi)
		return d, scaleReason(current, d.replicas)
	}
	u.wokeAt = w.at
	size := w.size(perReplica)
	if current == 0 {
		n := min(max(lo, 1, size), hi)
		u.scaler.force(c.now, n)
		return decision{replicas: n, mode: ModeStable}, ReasonScaledFromZero
	}
	d := u.scaler.correct(c.now, current, max(ev.recommended, size), lo, hi)
	return d, scaleReason(current, d.replicas)
}

func scaleReason(from, to int32) string {
	switch {
	case to == 0:
		return ReasonScaledToZero
	case to > from:
		return ReasonScaledUp
	case to < from:
		return ReasonScaledDown
	}
	return ""
}

// scaled records a scale: events on the policy and the ModelServing, the
// LastScale condition and the counter.
func (c *cycle) scaled(obj client.Object, target string, from, to int32, reason, why string) {
	msg := fmt.Sprintf("%s: %d -> %d", target, from, to)
	if why != "" {
		msg += " (" + why + ")"
	}
	c.r.Recorder.Event(c.pol, corev1.EventTypeNormal, reason, msg)
	c.r.Recorder.Eventf(obj, corev1.EventTypeNormal, reason, "AutoscalingPolicy %s: %s", c.pol.Name, msg)
	c.setLastScale(reason, msg)
	dir := "up"
	if to < from {
		dir = "down"
	}
	c.r.metrics.scales.WithLabelValues(c.pol.Namespace, c.pol.Name, target, dir, reason).Inc()
	c.log.V(2).Info("scaled", "target", target, "from", from, "to", to, "reason", reason)
}

// record exports a unit's decision as Prometheus metrics.
func (c *cycle) record(target string, current, desired int32, mode string, ev evaluation) {
	m := c.r.metrics
	m.current.WithLabelValues(c.pol.Namespace, c.pol.Name, target).Set(float64(current))
	m.desired.WithLabelValues(c.pol.Namespace, c.pol.Name, target).Set(float64(desired))
	p := 0.0
	if mode == ModePanic {
		p = 1
	}
	m.panic.WithLabelValues(c.pol.Namespace, c.pol.Name, target).Set(p)
	for _, o := range ev.metrics {
		if o.has {
			m.value.WithLabelValues(c.pol.Namespace, c.pol.Name, target, o.name).Set(o.value)
		} else {
			// A stale value would read as current: drop it until the
			// metric is read again.
			m.value.DeleteLabelValues(c.pol.Namespace, c.pol.Name, target, o.name)
		}
	}
}

// unitEval is one unit's evaluation, with the prefix its metrics carry in
// messages (a role's name).
type unitEval struct {
	prefix string
	ev     evaluation
}

// metricsReady sets Ready from the evaluations of the cycle. At zero there
// are no pods to read, so only whole-target (Prometheus) metrics show; if
// one of them failed, Ready is false since nothing but a scale-from-zero
// request can then wake the target.
func (c *cycle) metricsReady(ok, atZero bool, evs ...unitEval) {
	var summaries, read []string
	failed := false
	for _, u := range evs {
		if s := u.ev.summary(); s != "" {
			summaries = append(summaries, u.prefix+s)
		}
		if s := u.ev.readSummary(); s != "" {
			read = append(read, u.prefix+s)
		}
		failed = failed || u.ev.failed()
	}
	msg := joinNonEmpty(summaries)
	waiting := "waiting for a scale-from-zero request (" + ScaleFromZeroAnnotation + ")"
	switch {
	case atZero && failed:
		c.setCondition(ConditionReady, false, ReasonNoMetrics, "at zero replicas and a metric could not be read; only a scale-from-zero request ("+
			ScaleFromZeroAnnotation+") can wake the target: "+joinNonEmpty(read))
	case atZero && len(read) > 0:
		c.setCondition(ConditionReady, true, ReasonAtZero, "at zero replicas; "+waiting+" or a metric above its target: "+joinNonEmpty(read))
	case atZero:
		c.setCondition(ConditionReady, true, ReasonAtZero, "at zero replicas; "+waiting)
	case !ok:
		c.setCondition(ConditionReady, false, ReasonNoMetrics, "no metric gave a usable value, replicas stay: "+msg)
	case msg == "":
		c.setCondition(ConditionReady, true, ReasonMetricsRead, "no metrics to read")
	default:
		c.setCondition(ConditionReady, true, ReasonMetricsRead, msg)
	}
}

func joinNonEmpty(parts []string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += p
	}
	return out
}

func (c *cycle) homogeneous(ctx context.Context) error {
	t := c.pol.Spec.HomogeneousTarget
	name := t.Target.TargetRef.Name
	ms, err := c.getTarget(ctx, name)
	if ms == nil {
		return err
	}
	scale, err := c.r.getScale(ctx, ms)
	if err != nil {
		return err
	}
	c.setCondition(ConditionTargetFound, true, ReasonTargetFound, "ModelServing "+name)
	current := scale.Spec.Replicas
	u := c.st.unit(name, c.r.podConfig)
	c.noteExternal(u, ms, "spec.replicas of ModelServing "+name, current)
	pods, err := c.r.entryPods(ctx, ms.Namespace, name, "")
	if err != nil {
		return err
	}
	metrics := c.pol.Spec.Metrics
	readings := c.source(u).read(ctx, c.now, pods, requestsFor(metrics, t.Target.MetricSources))
	ev := evaluate(current, t.MinReplicas, t.MaxReplicas, c.tol, metrics, readings, podsPerGroup(pods))
	old := c.status.HomogeneousStatus
	var lastScale *metav1.Time
	if old != nil && old.Name == name {
		lastScale = old.LastScaleTime
	}
	var w wakeUp
	w.collect(u, ms, lastScale)
	d, reason := c.decide(u, current, ev, t.MinReplicas, t.MaxReplicas, w, requestsPerReplica(c.pol, metrics, t.Target.MetricSources))
	ts := &workloadv1alpha1.TargetScalingStatus{Name: name, CurrentReplicas: current, DesiredReplicas: d.replicas, Mode: d.mode, LastScaleTime: lastScale}
	c.status.HomogeneousStatus = ts
	c.record(name, current, d.replicas, d.mode, ev)
	if d.replicas != current {
		if err := c.r.writeScale(ctx, ms, scale, d.replicas); err != nil {
			return c.writeFailed(name, err)
		}
		u.written = d.replicas
		ts.LastScaleTime = &metav1.Time{Time: c.now}
		c.scaled(ms, name, current, d.replicas, reason, w.why(ev.summary()))
	}
	c.metricsReady(ev.ok, current == 0 && d.replicas == 0, unitEval{ev: ev})
	return nil
}

// writeFailed reports a failed write; a conflict (someone else changed the
// target) is not an error: the next cycle starts from their count.
func (c *cycle) writeFailed(target string, err error) error {
	c.setCondition(ConditionReady, false, ReasonScaleFailed, fmt.Sprintf("writing replicas of %s: %v", target, err))
	if apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
		return nil
	}
	return err
}

func (c *cycle) heterogeneous(ctx context.Context) error {
	t := c.pol.Spec.HeterogeneousTarget
	metrics := c.pol.Spec.Metrics
	type target struct {
		name    string
		ms      *workloadv1alpha1.ModelServing
		current int32
		ppr     float64
		u       *unit
	}
	var (
		targets  []target
		readings [][]metricReading
		costs    []costTarget
		current  int32
		lo, hi   int32
		wake     wakeUp
		weighted float64
		perRepl  float64
	)
	scales := map[string]*autoscalingv1.Scale{}
	oldStatus := map[string]*metav1.Time{}
	for _, s := range c.status.HeterogeneousStatus {
		oldStatus[s.Name] = s.LastScaleTime
	}
	for _, prm := range t.Params {
		name := prm.Target.TargetRef.Name
		ms, err := c.getTarget(ctx, name)
		if ms == nil {
			return err
		}
		scale, err := c.r.getScale(ctx, ms)
		if err != nil {
			return err
		}
		scales[name] = scale
		pods, err := c.r.entryPods(ctx, ms.Namespace, name, "")
		if err != nil {
			return err
		}
		u := c.st.unit(name, c.r.podConfig)
		c.noteExternal(u, ms, "spec.replicas of ModelServing "+name, scale.Spec.Replicas)
		ppr := podsPerGroup(pods)
		targets = append(targets, target{name: name, ms: ms, current: scale.Spec.Replicas, ppr: ppr, u: u})
		readings = append(readings, c.source(u).read(ctx, c.now, pods, requestsFor(metrics, prm.Target.MetricSources)))
		costs = append(costs, costTarget{cost: prm.Cost, lo: prm.MinReplicas, hi: prm.MaxReplicas})
		current += scale.Spec.Replicas
		lo += prm.MinReplicas
		hi += prm.MaxReplicas
		weighted += ppr * float64(scale.Spec.Replicas)
		wake.collect(c.st.unit("", c.r.podConfig), ms, oldStatus[name])
		// Tiers may read different series; the smallest per-replica
		// figure sizes the wake (more capacity rather than less).
		if pr := requestsPerReplica(c.pol, metrics, prm.Target.MetricSources); perRepl == 0 || (pr > 0 && pr < perRepl) {
			perRepl = pr
		}
	}
	c.setCondition(ConditionTargetFound, true, ReasonTargetFound, fmt.Sprintf("%d ModelServings", len(targets)))
	ppr := 1.0
	if current > 0 {
		ppr = weighted / float64(current)
	}
	ev := evaluate(current, lo, hi, c.tol, metrics, pool(readings, len(metrics)), ppr)
	total := c.st.unit("", c.r.podConfig)
	d, reason := c.decide(total, current, ev, lo, hi, wake, perRepl)
	split := place(costs, d.replicas, t.CostExpansionRatePercent)
	c.record("", current, d.replicas, d.mode, ev)
	if reason == "" {
		reason = ReasonRebalanced
	}

	// Raise before lowering, so capacity never dips while replicas move
	// between tiers.
	order := make([]int, len(targets))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return split[order[a]]-targets[order[a]].current > split[order[b]]-targets[order[b]].current
	})
	statuses := make([]workloadv1alpha1.TargetScalingStatus, len(targets))
	var werr error
	for _, i := range order {
		tg := targets[i]
		statuses[i] = workloadv1alpha1.TargetScalingStatus{Name: tg.name, CurrentReplicas: tg.current, DesiredReplicas: split[i], Mode: d.mode, LastScaleTime: oldStatus[tg.name]}
		c.record(tg.name, tg.current, split[i], d.mode, evaluation{})
		if split[i] == tg.current || werr != nil {
			continue
		}
		if err := c.r.writeScale(ctx, tg.ms, scales[tg.name], split[i]); err != nil {
			werr = c.writeFailed(tg.name, err)
			if werr == nil {
				werr = errStop
			}
			continue
		}
		tg.u.written = split[i]
		statuses[i].LastScaleTime = &metav1.Time{Time: c.now}
		r := reason
		if d.replicas == current {
			r = ReasonRebalanced
		} else if split[i] == 0 {
			r = ReasonScaledToZero
		}
		c.scaled(tg.ms, tg.name, tg.current, split[i], r, wake.why(ev.summary()))
	}
	c.status.HeterogeneousStatus = statuses
	if errors.Is(werr, errStop) {
		return nil
	}
	if werr != nil {
		return werr
	}
	c.metricsReady(ev.ok, current == 0 && d.replicas == 0, unitEval{ev: ev})
	return nil
}

// errStop ends a cycle's writes after a conflict without failing it.
var errStop = errors.New("stop")
