package modelbooster

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// ConditionUpdating is True while the ModelServing rolls to the booster's
// latest spec; upstream has no such condition, it is a Kthena addition.
const ConditionUpdating workloadv1alpha1.ModelStatusConditionType = "Updating"

// Condition reasons and event reasons.
const (
	ReasonGenerated        = "Generated"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonApplyFailed      = "ApplyFailed"
	ReasonRestored         = "Restored"
	ReasonDeleted          = "Deleted"
	ReasonAvailable        = "ModelServingAvailable"
	ReasonNotAvailable     = "ModelServingNotAvailable"
	ReasonRollingUpdate    = "RollingUpdate"
	ReasonUpToDate         = "UpToDate"
	ReasonNotYetGenerated  = "NotYetGenerated"
	ReasonModelServingGone = "ModelServingNotFound"
)

func setCondition(mb *workloadv1alpha1.ModelBooster, t workloadv1alpha1.ModelStatusConditionType, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&mb.Status.Conditions, metav1.Condition{
		Type: string(t), Status: s, Reason: reason, Message: msg, ObservedGeneration: mb.Generation,
	})
}

// setFailed marks the booster Failed; the other conditions keep what they
// last said about the objects already generated.
func setFailed(mb *workloadv1alpha1.ModelBooster, reason, msg string) {
	setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeFailed, true, reason, msg)
	if meta.FindStatusCondition(mb.Status.Conditions, string(workloadv1alpha1.ModelStatusConditionTypeInitialized)) == nil {
		setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeInitialized, false, reason, "nothing generated yet")
		setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeActive, false, reason, "nothing generated yet")
	}
}

// setGenerated records that every object was applied and reads the
// ModelServing's progress: Active follows its Available condition,
// Updating its rollout.
func setGenerated(mb *workloadv1alpha1.ModelBooster, objs []client.Object, ms *workloadv1alpha1.ModelServing) {
	setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeInitialized, true, ReasonGenerated, "generated "+objectNames(objs))
	setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeFailed, false, ReasonGenerated, "")
	if ms.UID == "" {
		setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeActive, false, ReasonModelServingGone, "the ModelServing is not in the cache yet")
		setCondition(mb, ConditionUpdating, true, ReasonRollingUpdate, "waiting for the ModelServing")
		return
	}
	avail := meta.FindStatusCondition(ms.Status.Conditions, string(workloadv1alpha1.ModelServingAvailable))
	if avail != nil && avail.Status == metav1.ConditionTrue {
		setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeActive, true, ReasonAvailable, fmt.Sprintf("ModelServing %s is available", ms.Name))
	} else {
		msg := fmt.Sprintf("ModelServing %s is not available yet", ms.Name)
		if avail != nil && avail.Message != "" {
			msg += ": " + avail.Message
		}
		setCondition(mb, workloadv1alpha1.ModelStatusConditionTypeActive, false, ReasonNotAvailable, msg)
	}
	replicas := int32(1)
	if ms.Spec.Replicas != nil {
		replicas = *ms.Spec.Replicas
	}
	rolling := meta.IsStatusConditionTrue(ms.Status.Conditions, string(workloadv1alpha1.ModelServingUpdateInProgress))
	if ms.Status.ObservedGeneration < ms.Generation || rolling || ms.Status.UpdatedReplicas < min(replicas, ms.Status.Replicas) {
		setCondition(mb, ConditionUpdating, true, ReasonRollingUpdate, fmt.Sprintf("ModelServing %s: %d of %d serving groups updated",
			ms.Name, ms.Status.UpdatedReplicas, replicas))
	} else {
		setCondition(mb, ConditionUpdating, false, ReasonUpToDate, fmt.Sprintf("ModelServing %s runs the latest spec", ms.Name))
	}
}

func statusEqual(a, b *workloadv1alpha1.ModelStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}
