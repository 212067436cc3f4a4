package modelbooster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Options are the controller's settings.
type Options struct {
	// DownloaderImage runs the model download init container.
	DownloaderImage string
}

// Reconciler generates and keeps the objects of each ModelBooster.
type Reconciler struct {
	client.Client
	// Reader reads past the cache (see apply).
	Reader   client.Reader
	Recorder record.EventRecorder
	Options  Options
}

// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelboosters,verbs=get;list;watch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelboosters/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings;autoscalingpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.serving.volcano.sh,resources=modelservers;modelroutes,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile applies the booster's generated objects, removes the ones a
// spec change left behind, and writes the status. Deletion is the garbage
// collector's: every generated object has the booster as its controller.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	mb := &workloadv1alpha1.ModelBooster{}
	if err := r.Get(ctx, req.NamespacedName, mb); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if mb.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	old := mb.Status.DeepCopy()
	p, objs, err := generate(mb, r.Options)
	if err != nil {
		// A spec the controller cannot generate from waits for the next
		// spec change; retrying would fail the same way.
		r.Recorder.Event(mb, corev1.EventTypeWarning, ReasonInvalidSpec, err.Error())
		setFailed(mb, ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, r.writeStatus(ctx, mb, old)
	}
	if p.scaling != nil {
		// Past the cache: a stale count would undo the autoscaler's last step.
		live := &workloadv1alpha1.ModelServing{}
		switch err := r.Reader.Get(ctx, client.ObjectKey{Namespace: mb.Namespace, Name: servingName(mb)}, live); {
		case apierrors.IsNotFound(err):
			live = nil
		case err != nil:
			return ctrl.Result{}, err
		}
		keepScaledReplicas(p, objs[0].(*workloadv1alpha1.ModelServing), live)
		if live != nil {
			// Apply only over the counts just read: a scale in between
			// (the autoscaler's, or a user's) makes the apply conflict and
			// the reconcile start again, rather than be undone by force.
			objs[0].SetResourceVersion(live.ResourceVersion)
		}
	}
	specChanged := mb.Generation != mb.Status.ObservedGeneration
	for _, obj := range objs {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		res, err := r.apply(ctx, mb, obj)
		if apierrors.IsConflict(err) {
			log.V(2).Info("generated object changed while reconciling; retrying", "kind", kind, "object", klog.KObj(obj))
			return ctrl.Result{Requeue: true}, nil
		}
		if err != nil {
			msg := fmt.Sprintf("applying %s %s: %v", kind, obj.GetName(), err)
			r.Recorder.Event(mb, corev1.EventTypeWarning, ReasonApplyFailed, msg)
			setFailed(mb, ReasonApplyFailed, msg)
			return ctrl.Result{}, errors.Join(fmt.Errorf("applying %s %s: %w", kind, obj.GetName(), err), r.writeStatus(ctx, mb, old))
		}
		if res == outcomeUnchanged {
			continue
		}
		reason := string(res)
		if res == outcomeUpdated && !specChanged {
			reason = ReasonRestored // the booster did not change, so someone else changed the object
		}
		log.V(2).Info("applied generated object", "kind", kind, "object", klog.KObj(obj), "outcome", reason)
		r.Recorder.Eventf(mb, corev1.EventTypeNormal, reason, "%s %s %s", reason, kind, obj.GetName())
	}
	if err := r.prune(ctx, mb, objs); err != nil {
		return ctrl.Result{}, err
	}
	ms := &workloadv1alpha1.ModelServing{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: mb.Namespace, Name: servingName(mb)}, ms); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	setGenerated(mb, objs, ms)
	return ctrl.Result{}, r.writeStatus(ctx, mb, old)
}

// writeStatus writes the status when it changed.
func (r *Reconciler) writeStatus(ctx context.Context, mb *workloadv1alpha1.ModelBooster, old *workloadv1alpha1.ModelStatus) error {
	mb.Status.ObservedGeneration = mb.Generation
	if statusEqual(old, &mb.Status) {
		return nil
	}
	return r.Status().Update(ctx, mb)
}

// objectNames lists the generated objects, "Kind/name", for messages.
func objectNames(objs []client.Object) string {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.GetObjectKind().GroupVersionKind().Kind + "/" + o.GetName()
	}
	return strings.Join(names, ", ")
}

// generate builds every object of the booster, the ModelServing first.
func generate(mb *workloadv1alpha1.ModelBooster, o Options) (*plan, []client.Object, error) {
	p, err := newPlan(mb, o)
	if err != nil {
		return nil, nil, err
	}
	objs := []client.Object{buildModelServing(p), buildModelServer(p), buildModelRoute(p)}
	if policy := buildAutoscalingPolicy(p); policy != nil {
		objs = append(objs, policy)
	}
	return p, objs, nil
}
