package workload

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// CacheOptions narrows the manager's cache to what the controller reads:
// only pods and services carrying the ModelServing name label, and only the
// PodGroup CRD among CRDs. Managed fields are dropped from cached objects.
func CacheOptions() cache.Options {
	req, err := labels.NewRequirement(workloadv1alpha1.ModelServingNameLabelKey, selection.Exists, nil)
	if err != nil {
		panic(err) // constant input
	}
	owned := labels.NewSelector().Add(*req)
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                               {Label: owned},
			&corev1.Service{}:                           {Label: owned},
			&policyv1.PodDisruptionBudget{}:             {Label: owned},
			&appsv1.ControllerRevision{}:                {Label: owned},
			&apiextensionsv1.CustomResourceDefinition{}: {Field: fields.OneTermEqualSelector("metadata.name", PodGroupCRDName)},
		},
	}
}

func indexByOwnerLabel(obj client.Object) []string {
	if v := obj.GetLabels()[workloadv1alpha1.ModelServingNameLabelKey]; v != "" {
		return []string{v}
	}
	return nil
}

// SetupWithManager registers the indexes, watches and the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	ctx := context.Background()
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Service{}, &appsv1.ControllerRevision{}, &policyv1.PodDisruptionBudget{}} {
		if err := mgr.GetFieldIndexer().IndexField(ctx, obj, ownerIndex, indexByOwnerLabel); err != nil {
			return err
		}
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	if r.Scheme == nil {
		r.Scheme = mgr.GetScheme()
	}
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorderFor(ControllerName)
	}
	r.exp = newExpectations()
	r.track = newTracker()
	r.cache = mgr.GetCache()
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&workloadv1alpha1.ModelServing{}).
		Watches(&corev1.Pod{}, &podHandler{exp: r.exp}).
		Owns(&corev1.Service{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Owns(&policyv1.PodDisruptionBudget{}).
		Watches(&apiextensionsv1.CustomResourceDefinition{}, handler.EnqueueRequestsFromMapFunc(r.allModelServings),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetName() == PodGroupCRDName }))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(workers, 1)}).
		Build(r)
	if err != nil {
		return err
	}
	r.controller = c
	return nil
}

// allModelServings enqueues every ModelServing (the PodGroup CRD changed).
func (r *Reconciler) allModelServings(ctx context.Context, _ client.Object) []reconcile.Request {
	var list workloadv1alpha1.ModelServingList
	if err := r.List(ctx, &list); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing ModelServings after a PodGroup CRD change")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// podHandler enqueues a pod's ModelServing and tells the expectations what
// the cache now shows.
type podHandler struct{ exp *expectations }

var _ handler.EventHandler = &podHandler{}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func ownerKey(obj client.Object) (types.NamespacedName, bool) {
	ref := metavOwner(obj)
	if ref == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref}, true
}

// metavOwner is the name of obj's controlling ModelServing, or "".
func metavOwner(obj client.Object) string {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller && ref.Kind == "ModelServing" && ref.APIVersion == workloadv1alpha1.GroupVersion.String() {
			return ref.Name
		}
	}
	return ""
}

func (h *podHandler) Create(_ context.Context, e event.CreateEvent, q queue) {
	if key, ok := ownerKey(e.Object); ok {
		h.exp.created(key, e.Object.GetName())
		if e.Object.GetDeletionTimestamp() != nil {
			h.exp.deleted(key, e.Object.GetUID())
		}
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

func (h *podHandler) Update(_ context.Context, e event.UpdateEvent, q queue) {
	key, ok := ownerKey(e.ObjectNew)
	if !ok {
		return
	}
	if e.ObjectNew.GetDeletionTimestamp() != nil && e.ObjectOld.GetDeletionTimestamp() == nil {
		h.observeDeletion(key, e.ObjectNew)
	}
	q.Add(reconcile.Request{NamespacedName: key})
}

func (h *podHandler) Delete(_ context.Context, e event.DeleteEvent, q queue) {
	if key, ok := ownerKey(e.Object); ok {
		if e.Object.GetDeletionTimestamp() == nil {
			h.observeDeletion(key, e.Object)
		} else {
			h.exp.deleted(key, e.Object.GetUID())
		}
		q.Add(reconcile.Request{NamespacedName: key})
	}
}

// observeDeletion settles an expected deletion, or records the pod's group
// as having lost a pod (for ServingGroupRecreate).
func (h *podHandler) observeDeletion(key types.NamespacedName, obj client.Object) {
	if !h.exp.deleted(key, obj.GetUID()) {
		if g := obj.GetLabels()[workloadv1alpha1.GroupNameLabelKey]; g != "" {
			h.exp.lose(key, g)
		}
	}
}

func (h *podHandler) Generic(_ context.Context, e event.GenericEvent, q queue) {
	if key, ok := ownerKey(e.Object); ok {
		q.Add(reconcile.Request{NamespacedName: key})
	}
}
