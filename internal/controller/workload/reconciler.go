package workload

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/workload/plugins"
)

// ControllerName names the controller, its logger and its events.
const ControllerName = "modelserving"

// ownerIndex indexes pods, services and revisions by the value of their
// modelserving.volcano.sh/name label, so a reconcile lists only its own
// objects from the cache.
const ownerIndex = "index.modelserving.volcano.sh/name"

// Reconciler reconciles ModelServings into serving groups of pods.
type Reconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// Plugins resolves spec.plugins; nil means the built-in plugins.
	Plugins *plugins.Registry
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	exp        *expectations
	track      *tracker
	controller controller.Controller
	cache      cache.Cache
	pgWatch    podGroupWatch
}

// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=scheduling.volcano.sh,resources=podgroups,verbs=get;list;watch;create;update;delete;deletecollection
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get;list;watch

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile brings one ModelServing's pods, services, PodGroups, revisions
// and status to its spec.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ms := &workloadv1alpha1.ModelServing{}
	if err := r.Get(ctx, req.NamespacedName, ms); err != nil {
		if apierrors.IsNotFound(err) {
			r.exp.forget(req.NamespacedName)
			r.track.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ms.DeletionTimestamp != nil {
		return ctrl.Result{}, r.cleanup(ctx, ms)
	}
	now := r.now()
	if ok, wait := r.exp.satisfied(req.NamespacedName, now); !ok {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	pods, err := r.ownedPods(ctx, ms)
	if err != nil {
		return ctrl.Result{}, err
	}
	var crs appsv1.ControllerRevisionList
	if err := r.List(ctx, &crs, client.InNamespace(ms.Namespace), client.MatchingFields{ownerIndex: ms.Name}); err != nil {
		return ctrl.Result{}, err
	}
	tmpl := TemplateOf(ms)
	revs := newRevisionSet(&tmpl, ownedRevisions(crs.Items, ms))
	if err := r.ensureRevision(ctx, ms, revs); err != nil {
		return ctrl.Result{}, err
	}
	revs.current = ms.Status.CurrentRevision
	if _, ok := revs.templates[revs.current]; !ok {
		revs.current = revs.update
	}

	gs, err := r.detectGang(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if gs.podGroups {
		if err := r.ensurePodGroupWatch(); err != nil {
			return ctrl.Result{}, err
		}
	}
	chain, err := r.registry().Chain(ms.Spec.Plugins)
	if err != nil {
		r.Recorder.Event(ms, corev1.EventTypeWarning, ReasonPluginError, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}

	m, _ := buildModel(ms.Name, pods)
	p := newPlan(ms, revs, m, chain, gs.podGroups && ms.Spec.SchedulerName == VolcanoSchedulerName, now)
	p.finishDeletions()
	p.recover(r.exp.takeLost(req.NamespacedName))
	p.scaleGroups()
	p.scaleRoles()
	if p.roleMode {
		p.rollRoles()
		p.dropSurge()
	} else {
		p.rollGroups()
	}
	if err := p.fill(ctx); err != nil {
		r.Recorder.Event(ms, corev1.EventTypeWarning, ReasonPluginError, err.Error())
		return ctrl.Result{}, reconcile.TerminalError(err)
	}

	errs := []error{r.apply(ctx, ms, p)}
	errs = append(errs, r.syncServices(ctx, ms, p.desiredServices()))
	errs = append(errs, r.syncPodGroups(ctx, ms, p, gs))
	errs = append(errs, r.syncPDBs(ctx, ms, desiredPDBs(ms)))
	errs = append(errs, r.pruneRevisions(ctx, revs, pods))
	r.announce(ctx, ms, p)
	errs = append(errs, r.writeStatus(ctx, ms, p.status()))
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: p.requeue}, nil
}

func (r *Reconciler) registry() *plugins.Registry {
	if r.Plugins == nil {
		r.Plugins = plugins.NewBuiltInRegistry()
	}
	return r.Plugins
}

// ownedPods lists the pods of ms from the cache.
func (r *Reconciler) ownedPods(ctx context.Context, ms *workloadv1alpha1.ModelServing) ([]*corev1.Pod, error) {
	var list corev1.PodList
	if err := r.List(ctx, &list, client.InNamespace(ms.Namespace), client.MatchingFields{ownerIndex: ms.Name}); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		if ownedBy(&list.Items[i], ms) {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

func ownedRevisions(crs []appsv1.ControllerRevision, ms *workloadv1alpha1.ModelServing) []appsv1.ControllerRevision {
	out := crs[:0:0]
	for i := range crs {
		if ownedBy(&crs[i], ms) {
			out = append(out, crs[i])
		}
	}
	return out
}

// ensureRevision stores the update revision as a ControllerRevision.
func (r *Reconciler) ensureRevision(ctx context.Context, ms *workloadv1alpha1.ModelServing, revs *revisionSet) error {
	if revs.objects[revs.update] != nil {
		return nil
	}
	cr, err := newControllerRevision(ms, revs.updateTmpl, revs.update, revs.maxNumber+1)
	if err != nil {
		return err
	}
	if err := r.Create(ctx, cr); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating revision %s: %w", cr.Name, err)
	}
	revs.objects[revs.update] = cr
	return nil
}

// pruneRevisions deletes revisions that are neither current, update, nor
// used by a pod.
func (r *Reconciler) pruneRevisions(ctx context.Context, revs *revisionSet, pods []*corev1.Pod) error {
	inUse := map[string]bool{}
	for _, p := range pods {
		inUse[p.Labels[workloadv1alpha1.RevisionLabelKey]] = true
	}
	var errs []error
	for _, cr := range revs.stale(inUse) {
		if err := r.Delete(ctx, cr, client.Preconditions{UID: &cr.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// apply performs the plan's pod deletions and creations, recording them as
// expectations first, and emits the role events.
func (r *Reconciler) apply(ctx context.Context, ms *workloadv1alpha1.ModelServing, p *plan) error {
	key := client.ObjectKeyFromObject(ms)
	var uids []types.UID
	for _, pod := range p.delete {
		uids = append(uids, pod.UID)
	}
	names := make([]string, 0, len(p.create))
	for _, pod := range p.create {
		names = append(names, pod.Name)
	}
	r.exp.expect(key, names, uids, p.now)

	for _, msg := range p.recovery {
		r.Recorder.Event(ms, corev1.EventTypeNormal, ReasonPodRecovery, msg)
	}
	if len(p.deleting) > 0 {
		r.Recorder.Event(ms, corev1.EventTypeNormal, ReasonRoleDeleting, eventMessage(p.deleting))
	}
	var errs []error
	for _, pod := range p.delete {
		err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
		if err != nil {
			r.exp.deleted(key, pod.UID)
			if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("deleting pod %s: %w", pod.Name, err))
			}
		}
	}
	if len(p.creating) > 0 {
		r.Recorder.Event(ms, corev1.EventTypeNormal, ReasonRoleCreating, eventMessage(p.creating))
	}
	for _, pod := range p.create {
		if err := r.Create(ctx, pod); err != nil {
			r.exp.created(key, pod.Name)
			if !apierrors.IsAlreadyExists(err) {
				errs = append(errs, fmt.Errorf("creating pod %s: %w", pod.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// announce emits RoleRunning for role replicas that became running and runs
// the plugins' OnPodReady for pods that became ready.
func (r *Reconciler) announce(ctx context.Context, ms *workloadv1alpha1.ModelServing, p *plan) {
	key := client.ObjectKeyFromObject(ms)
	running := map[string]bool{}
	ready := map[types.UID]bool{}
	readyReq := map[types.UID]func(){}
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		g.each(func(rs *replicaState) {
			if p.replicaRunning(g, rs) {
				running[GroupName(ms.Name, i)+"/"+RoleID(rs.role, rs.ordinal)] = true
			}
			if p.chain.Len() == 0 {
				return
			}
			for k, pod := range rs.pods {
				if pod.UID != "" && podReady(pod) {
					ready[pod.UID] = true
					req := hookRequest(ms, i, rs.role, rs.ordinal, k, pod)
					readyReq[pod.UID] = func() {
						if err := p.chain.OnPodReady(ctx, req); err != nil {
							r.Recorder.Event(ms, corev1.EventTypeWarning, ReasonPluginError, err.Error())
						}
					}
				}
			}
		})
	}
	if fresh := r.track.runningNow(key, running); len(fresh) > 0 {
		byGroup := map[string][]string{}
		for _, id := range fresh {
			var g, rid string
			for i := len(id) - 1; i >= 0; i-- {
				if id[i] == '/' {
					g, rid = id[:i], id[i+1:]
					break
				}
			}
			byGroup[g] = append(byGroup[g], rid)
		}
		r.Recorder.Event(ms, corev1.EventTypeNormal, ReasonRoleRunning, eventMessage(byGroup))
	}
	for _, uid := range r.track.readyNow(key, ready) {
		readyReq[uid]()
	}
}

// writeStatus patches the status when it changed, and only then.
func (r *Reconciler) writeStatus(ctx context.Context, ms *workloadv1alpha1.ModelServing, st workloadv1alpha1.ModelServingStatus) error {
	if equality.Semantic.DeepEqual(ms.Status, st) {
		return nil
	}
	base := ms.DeepCopy()
	ms.Status = st
	return r.Status().Patch(ctx, ms, client.MergeFrom(base))
}

// cleanup deletes what a ModelServing being deleted owns. The garbage
// collector does the same through owner references; doing it here makes it
// prompt, and makes foreground deletion complete where no collector runs.
func (r *Reconciler) cleanup(ctx context.Context, ms *workloadv1alpha1.ModelServing) error {
	key := client.ObjectKeyFromObject(ms)
	r.exp.forget(key)
	r.track.forget(key)
	pods, err := r.ownedPods(ctx, ms)
	if err != nil {
		return err
	}
	var errs []error
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil {
			if err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, r.syncServices(ctx, ms, nil))
	errs = append(errs, r.syncPDBs(ctx, ms, nil))
	if gs, err := r.detectGang(ctx); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, r.syncPodGroups(ctx, ms, &plan{m: newModel()}, gs))
	}
	return errors.Join(errs...)
}
