package modelbooster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// prune deletes the objects this booster generated earlier and no longer
// does: the old ModelServing and ModelServer after a backend rename, the
// AutoscalingPolicy once autoscaling is turned off.
func (r *Reconciler) prune(ctx context.Context, mb *workloadv1alpha1.ModelBooster, keep []client.Object) error {
	want := map[string]bool{}
	for _, o := range keep {
		want[o.GetObjectKind().GroupVersionKind().Kind+"/"+o.GetName()] = true
	}
	lists := map[string]client.ObjectList{
		"ModelServing":      &workloadv1alpha1.ModelServingList{},
		"ModelServer":       &networkingv1alpha1.ModelServerList{},
		"ModelRoute":        &networkingv1alpha1.ModelRouteList{},
		"AutoscalingPolicy": &workloadv1alpha1.AutoscalingPolicyList{},
	}
	for _, kind := range []string{"AutoscalingPolicy", "ModelRoute", "ModelServer", "ModelServing"} {
		list := lists[kind]
		if err := r.List(ctx, list, client.InNamespace(mb.Namespace),
			client.MatchingLabels{workloadv1alpha1.ModelBoosterModelUIDLabelKey: string(mb.UID)}); err != nil {
			return err
		}
		objs, err := listObjects(list)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if want[kind+"/"+o.GetName()] || metav1ControllerOf(o) != string(mb.UID) {
				continue
			}
			if err := r.Delete(ctx, o, client.PropagationPolicy("Background")); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting %s %s: %w", kind, o.GetName(), err)
			}
			r.Recorder.Eventf(mb, corev1.EventTypeNormal, ReasonDeleted, "Deleted %s %s, no longer generated", kind, o.GetName())
		}
	}
	return nil
}

func listObjects(list client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := list.(type) {
	case *workloadv1alpha1.ModelServingList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *networkingv1alpha1.ModelServerList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *networkingv1alpha1.ModelRouteList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *workloadv1alpha1.AutoscalingPolicyList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	default:
		return nil, fmt.Errorf("unexpected list %T", list)
	}
	return out, nil
}
