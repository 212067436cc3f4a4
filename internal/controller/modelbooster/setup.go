package modelbooster

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// SetupWithManager registers the controller. A booster is reconciled when
// its spec changes and whenever one of its generated objects changes or is
// deleted: a hand edit is taken back at once, a deleted object re-created,
// and the ModelServing's status feeds Active and Updating.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Reader == nil {
		r.Reader = mgr.GetAPIReader()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorderFor(ControllerName)
	}
	if r.Options.DownloaderImage == "" {
		r.Options.DownloaderImage = DefaultDownloaderImage
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&workloadv1alpha1.ModelBooster{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&workloadv1alpha1.ModelServing{}).
		Owns(&networkingv1alpha1.ModelServer{}).
		Owns(&networkingv1alpha1.ModelRoute{}).
		Owns(&workloadv1alpha1.AutoscalingPolicy{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(workers, 1)}).
		Complete(r)
}
