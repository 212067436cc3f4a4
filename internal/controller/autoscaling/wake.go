package autoscaling

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Annotations the autoscaler reads.
const (
	// ScaleFromZeroAnnotation on a ModelServing asks the policy that scales
	// it for an immediate scale-up from zero. Its value is the time of the
	// request (RFC 3339). The controller acts on a request when the target is
	// at zero and the request is later than the target's last scale time in
	// the policy's status; it scales to max(1, minReplicas) (both roles of a
	// disaggregated target, within their ratio) without waiting for its
	// period, and the scale-down window starts again from there. The router
	// will set it when a request arrives for a model with no pods.
	ScaleFromZeroAnnotation = "autoscaling.kthena.io/scale-from-zero-requested-at"

	// PausedAnnotation set to "true" on an AutoscalingPolicy stops it writing
	// replicas: the targets keep whatever count they have (manual scaling
	// then sticks) until the annotation is removed.
	PausedAnnotation = "autoscaling.kthena.io/paused"
)

// RequestScaleFromZero asks the autoscaler to bring the ModelServing key up
// from zero now. It is the seam for the router (or any client with patch
// rights on modelservings): it sets ScaleFromZeroAnnotation to at with a
// merge patch, so concurrent callers never conflict.
func RequestScaleFromZero(ctx context.Context, c client.Client, key types.NamespacedName, at time.Time) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		ScaleFromZeroAnnotation: at.UTC().Format(time.RFC3339Nano),
	}}})
	if err != nil {
		return err
	}
	ms := &workloadv1alpha1.ModelServing{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	if err := c.Patch(ctx, ms, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("requesting scale-up from zero of %s: %w", key, err)
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

// wakePending reports whether ms carries a request later than lastScale.
func wakePending(ms *workloadv1alpha1.ModelServing, lastScale *metav1.Time) bool {
	t, ok := wakeRequest(ms)
	if !ok {
		return false
	}
	return lastScale == nil || t.After(lastScale.Time)
}

func paused(p *workloadv1alpha1.AutoscalingPolicy) bool {
	return p.Annotations[PausedAnnotation] == "true"
}
