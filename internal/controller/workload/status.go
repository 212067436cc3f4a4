package workload

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Condition reasons.
const (
	ReasonAllGroupsReady   = "AllGroupsReady"
	ReasonGroupProgressing = "GroupProgressing"
	ReasonGroupsUpdating   = "GroupsUpdating"
)

// labelSelector selects one pod per group: the entry pod of the first role's
// replica 0, so that the scale subresource counts groups.
func labelSelector(ms *workloadv1alpha1.ModelServing) string {
	if len(ms.Spec.Template.Roles) == 0 {
		return ""
	}
	role := ms.Spec.Template.Roles[0].Name
	return labels.SelectorFromSet(labels.Set{
		workloadv1alpha1.ModelServingNameLabelKey: ms.Name,
		workloadv1alpha1.EntryLabelKey:            "true",
		workloadv1alpha1.RoleLabelKey:             role,
		workloadv1alpha1.RoleIDLabelKey:           RoleID(role, 0),
	}).String()
}

// status computes the status the plan leaves: counts over the groups that
// remain, revisions with StatefulSet semantics (currentRevision moves to
// updateRevision once every group is updated) and the three conditions,
// of which exactly one is true.
func (p *plan) status() workloadv1alpha1.ModelServingStatus {
	old := p.ms.Status
	st := workloadv1alpha1.ModelServingStatus{
		ObservedGeneration: p.ms.Generation,
		Replicas:           int32(len(p.m.groups)),
		UpdateRevision:     p.revs.update,
		CurrentRevision:    p.revs.current,
		LabelSelector:      labelSelector(p.ms),
		Conditions:         append([]metav1.Condition(nil), old.Conditions...),
	}
	for _, g := range p.m.groups {
		if p.groupUpdated(g) {
			st.UpdatedReplicas++
		}
		if p.groupAt(g, p.revs.current) {
			st.CurrentReplicas++
		}
		if p.groupRunning(g) {
			st.AvailableReplicas++
		}
	}
	want := int32(p.replicas())
	if st.UpdatedReplicas == want && st.Replicas == want {
		st.CurrentRevision = st.UpdateRevision
		st.CurrentReplicas = st.UpdatedReplicas
	}

	set := func(t workloadv1alpha1.ModelServingConditionType, on bool, reason, msg string) {
		status := metav1.ConditionFalse
		if on {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: string(t), Status: status, Reason: reason, Message: msg, ObservedGeneration: p.ms.Generation,
		})
	}
	updating := st.CurrentRevision != st.UpdateRevision
	available := !updating && st.Replicas == want && st.AvailableReplicas == want
	var reason, msg string
	switch {
	case updating:
		reason = ReasonGroupsUpdating
		msg = fmt.Sprintf("%d of %d groups updated to revision %s", st.UpdatedReplicas, want, st.UpdateRevision)
	case available:
		reason = ReasonAllGroupsReady
		msg = fmt.Sprintf("%d of %d groups ready", st.AvailableReplicas, want)
	default:
		reason = ReasonGroupProgressing
		msg = fmt.Sprintf("%d of %d groups ready, %d exist", st.AvailableReplicas, want, st.Replicas)
	}
	set(workloadv1alpha1.ModelServingUpdateInProgress, updating, reason, msg)
	set(workloadv1alpha1.ModelServingAvailable, available, reason, msg)
	set(workloadv1alpha1.ModelServingProgressing, !updating && !available, reason, msg)
	return st
}
