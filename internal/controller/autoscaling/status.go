package autoscaling

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Condition types of an AutoscalingPolicy.
const (
	// ConditionReady is true when the last cycle read metrics and decided;
	// its message lists the metric values seen.
	ConditionReady = "Ready"
	// ConditionTargetFound is true when every target (and role) exists.
	ConditionTargetFound = "TargetFound"
	// ConditionRatioConstraintViolated is true when a disaggregated target's
	// role counts are outside its ratio after the cycle.
	ConditionRatioConstraintViolated = "RatioConstraintViolated"
	// ConditionLastScale describes the last replica change: its reason,
	// message ("<target>: <from> -> <to> (<metrics>)") and time.
	ConditionLastScale = "LastScale"
)

// Reasons of conditions and events.
const (
	ReasonMetricsRead    = "MetricsRead"
	ReasonNoMetrics      = "NoMetrics"
	ReasonAtZero         = "AtZero"
	ReasonTargetFound    = "TargetFound"
	ReasonTargetNotFound = "TargetNotFound"
	ReasonRoleNotFound   = "RoleNotFound"
	ReasonTargetConflict = "TargetConflict"
	ReasonPaused         = "Paused"
	ReasonInvalidSpec    = "InvalidSpec"
	ReasonScaleFailed    = "ScaleFailed"
	ReasonExternalScale  = "ExternalScale"
	ReasonScaledUp       = "ScaledUp"
	ReasonScaledDown     = "ScaledDown"
	ReasonScaledToZero   = "ScaledToZero"
	ReasonScaledFromZero = "ScaledFromZero"
	ReasonRebalanced     = "Rebalanced"
	ReasonRatioRepaired  = "RatioRepaired"
	ReasonWithinRatio    = "WithinRatio"
)

func (c *cycle) setCondition(t string, on bool, reason, msg string) {
	status := metav1.ConditionFalse
	if on {
		status = metav1.ConditionTrue
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	meta.SetStatusCondition(&c.status.Conditions, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: c.pol.Generation,
	})
}

// setLastScale replaces the LastScale condition so that its transition time
// is the time of this scale.
func (c *cycle) setLastScale(reason, msg string) {
	meta.RemoveStatusCondition(&c.status.Conditions, ConditionLastScale)
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	meta.SetStatusCondition(&c.status.Conditions, metav1.Condition{
		Type: ConditionLastScale, Status: metav1.ConditionTrue, Reason: reason, Message: msg,
		ObservedGeneration: c.pol.Generation, LastTransitionTime: metav1.NewTime(c.now),
	})
}

// writeStatus patches the policy's status if it changed.
func (c *cycle) writeStatus(ctx context.Context) error {
	if equality.Semantic.DeepEqual(&c.status, &c.pol.Status) {
		return nil
	}
	base := c.pol.DeepCopy()
	c.pol.Status = c.status
	return client.IgnoreNotFound(c.r.Status().Patch(ctx, c.pol, client.MergeFrom(base)))
}

// lastScaleOf is the last scale time status shows for a ModelServing.
func lastScaleOf(p *workloadv1alpha1.AutoscalingPolicy, name string) *metav1.Time {
	st := &p.Status
	if s := st.HomogeneousStatus; s != nil && s.Name == name {
		return s.LastScaleTime
	}
	for _, s := range st.HeterogeneousStatus {
		if s.Name == name {
			return s.LastScaleTime
		}
	}
	if d := st.DisaggregatedStatus; d != nil && p.Spec.DisaggregatedTarget != nil && p.Spec.DisaggregatedTarget.TargetRef.Name == name {
		return latestScale(d.Roles)
	}
	return nil
}

// latestScale is the latest LastScaleTime among roles.
func latestScale(roles []workloadv1alpha1.TargetScalingStatus) *metav1.Time {
	var out *metav1.Time
	for _, r := range roles {
		if r.LastScaleTime != nil && (out == nil || out.Before(r.LastScaleTime)) {
			out = r.LastScaleTime
		}
	}
	return out
}
