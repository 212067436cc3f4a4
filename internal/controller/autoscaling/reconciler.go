// Package autoscaling holds the AutoscalingPolicy controller: every sync
// period it reads each policy's metrics from the engine pods of its targets,
// recommends a replica count, corrects it with the policy's behaviour
// (stabilisation windows, rate limits, panic mode) and writes it to the
// target ModelServings: whole (homogeneous), spread over cost tiers
// (heterogeneous) or per role within a ratio (disaggregated).
package autoscaling

import (
	"context"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// ControllerName names the controller on the --controllers list, its logger
// and its events.
const ControllerName = "autoscalingpolicy"

// DefaultSyncPeriod is how often each policy is evaluated.
const DefaultSyncPeriod = 15 * time.Second

// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=autoscalingpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=autoscalingpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=workload.serving.volcano.sh,resources=modelservings/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconciler runs the autoscaling loop of every AutoscalingPolicy.
type Reconciler struct {
	client.Client
	Recorder record.EventRecorder
	// SyncPeriod is how often each policy is evaluated; 0 means
	// DefaultSyncPeriod.
	SyncPeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	podConfig podSourceConfig
	// prom holds one Prometheus client per server, shared by all policies.
	prom    *promClients
	metrics *decisionMetrics
	mu      sync.Mutex
	states  map[types.NamespacedName]*policyState
}

// policyState is the in-memory state of one policy: its scalers' histories
// and its sources' baselines. It is rebuilt when the policy's generation
// changes.
type policyState struct {
	uid        types.UID
	generation int64
	behavior   behavior
	lastRun    time.Time
	units      map[string]*unit
}

// unit is one scaling unit: a ModelServing, a heterogeneous policy's total,
// or a role.
type unit struct {
	scaler *scaler
	// sources are per target (a heterogeneous total reads several).
	source metricSource
	// written is the count the controller last wrote, to notice changes
	// made by others.
	written    int32
	hasWritten bool
	// wokeAt is the latest request for capacity acted on (wakeUp.collect).
	wokeAt time.Time
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) period() time.Duration {
	if r.SyncPeriod > 0 {
		return r.SyncPeriod
	}
	return DefaultSyncPeriod
}

func (r *Reconciler) state(p *workloadv1alpha1.AutoscalingPolicy) *policyState {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := client.ObjectKeyFromObject(p)
	st := r.states[key]
	if st == nil || st.uid != p.UID || st.generation != p.Generation {
		st = &policyState{uid: p.UID, generation: p.Generation, behavior: resolveBehavior(p.Spec.Behavior), units: map[string]*unit{}}
		r.states[key] = st
	}
	return st
}

func (r *Reconciler) drop(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.states, key)
	r.mu.Unlock()
	r.metrics.forget(key.Namespace, key.Name)
}

func (st *policyState) unit(name string, cfg podSourceConfig) *unit {
	u := st.units[name]
	if u == nil {
		u = &unit{scaler: newScaler(st.behavior), source: newPodSource(cfg)}
		st.units[name] = u
	}
	return u
}

// targetNames are the ModelServings a policy scales.
func targetNames(p *workloadv1alpha1.AutoscalingPolicy) []string {
	var out []string
	if t := p.Spec.HomogeneousTarget; t != nil {
		out = append(out, t.Target.TargetRef.Name)
	}
	if t := p.Spec.HeterogeneousTarget; t != nil {
		for _, prm := range t.Params {
			out = append(out, prm.Target.TargetRef.Name)
		}
	}
	if t := p.Spec.DisaggregatedTarget; t != nil {
		out = append(out, t.TargetRef.Name)
	}
	return out
}

// Reconcile runs one cycle of a policy when its period is due (or a
// scale-from-zero request waits), and asks to be called again next period.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pol := &workloadv1alpha1.AutoscalingPolicy{}
	if err := r.Get(ctx, req.NamespacedName, pol); err != nil {
		if apierrors.IsNotFound(err) {
			r.drop(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if pol.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	st := r.state(pol)
	now := r.now()
	if !st.lastRun.IsZero() && now.Sub(st.lastRun) < r.period() && !r.wakeWaiting(ctx, pol) {
		return ctrl.Result{RequeueAfter: r.period() - now.Sub(st.lastRun)}, nil
	}
	st.lastRun = now
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(r.period(), 5*time.Second))
	defer cancel()

	c := newCycle(r, pol, st, now)
	err := c.run(ctx)
	if serr := c.writeStatus(ctx); serr != nil && err == nil {
		err = serr
	}
	r.metrics.cycle.Observe(time.Since(start).Seconds())
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.period()}, nil
}

// wakeWaiting reports whether a target of pol carries a scale-from-zero
// request newer than its last scale, so the cycle runs before its period.
func (r *Reconciler) wakeWaiting(ctx context.Context, pol *workloadv1alpha1.AutoscalingPolicy) bool {
	for _, name := range targetNames(pol) {
		ms := &workloadv1alpha1.ModelServing{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: pol.Namespace, Name: name}, ms); err != nil {
			continue
		}
		if wakePending(ms, lastScaleOf(pol, name)) {
			return true
		}
	}
	return false
}

// getScale reads a ModelServing's scale subresource (live, for its
// resourceVersion).
func (r *Reconciler) getScale(ctx context.Context, ms *workloadv1alpha1.ModelServing) (*autoscalingv1.Scale, error) {
	scale := &autoscalingv1.Scale{}
	if err := r.SubResource("scale").Get(ctx, ms, scale); err != nil {
		return nil, err
	}
	return scale, nil
}

// writeScale sets spec.replicas through the scale subresource, with the
// resourceVersion read this cycle: a change made by anyone in between makes
// it fail with a conflict, and the next cycle starts from the new count.
func (r *Reconciler) writeScale(ctx context.Context, ms *workloadv1alpha1.ModelServing, scale *autoscalingv1.Scale, replicas int32) error {
	scale = scale.DeepCopy()
	scale.Spec.Replicas = replicas
	return r.SubResource("scale").Update(ctx, ms, client.WithSubResourceBody(scale))
}

// entryPods lists the entry pods of a ModelServing (of one role if role is
// set); the engine serves its metrics there.
func (r *Reconciler) entryPods(ctx context.Context, ns, ms, role string) ([]*corev1.Pod, error) {
	sel := client.MatchingLabels{
		workloadv1alpha1.ModelServingNameLabelKey: ms,
		workloadv1alpha1.EntryLabelKey:            "true",
	}
	if role != "" {
		sel[workloadv1alpha1.RoleLabelKey] = role
	}
	var list corev1.PodList
	if err := r.List(ctx, &list, client.InNamespace(ns), sel); err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, &list.Items[i])
	}
	return out, nil
}

// podsPerGroup is the most entry pods any serving group has among pods
// (the pods one replica of a ModelServing carries), at least 1.
func podsPerGroup(pods []*corev1.Pod) float64 {
	per := map[string]int{}
	most := 1
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		g := p.Labels[workloadv1alpha1.GroupNameLabelKey]
		per[g]++
		most = max(most, per[g])
	}
	return float64(most)
}
