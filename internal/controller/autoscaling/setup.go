package autoscaling

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// SetupWithManager registers the controller. Policies are reconciled when
// their spec or annotations change and then once per sync period; a
// ModelServing wakes the policies that scale it when it is created or
// deleted or when its scale-from-zero annotation changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorderFor(ControllerName)
	}
	if r.podConfig.client == nil {
		r.podConfig = defaultPodSourceConfig()
	}
	if r.prom == nil {
		r.prom = newPromClients()
	}
	r.metrics = newDecisionMetrics()
	r.states = map[types.NamespacedName]*policyState{}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&workloadv1alpha1.AutoscalingPolicy{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Watches(&workloadv1alpha1.ModelServing{}, handler.EnqueueRequestsFromMapFunc(r.policiesOf),
			builder.WithPredicates(predicate.Funcs{
				UpdateFunc: func(e event.UpdateEvent) bool {
					return e.ObjectOld.GetAnnotations()[ScaleFromZeroAnnotation] != e.ObjectNew.GetAnnotations()[ScaleFromZeroAnnotation]
				},
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(workers, 1)}).
		Complete(r)
}

// policiesOf maps a ModelServing to the policies in its namespace that
// scale it.
func (r *Reconciler) policiesOf(ctx context.Context, obj client.Object) []reconcile.Request {
	var list workloadv1alpha1.AutoscalingPolicyList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace())); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing AutoscalingPolicies for a ModelServing change")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		for _, n := range targetNames(&list.Items[i]) {
			if n == obj.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
				break
			}
		}
	}
	return out
}
