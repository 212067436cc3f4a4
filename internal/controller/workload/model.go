package workload

import (
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// model is the observed (then planned) shape of one ModelServing: groups by
// ordinal, role replicas by role and ordinal, pods by worker index. It is
// rebuilt from the informer cache on every reconcile, so the controller keeps
// no state that a restart could lose.
type model struct {
	groups map[int]*groupState
	// halfDeleted are pods marked deleted with a zero grace period and no
	// finalizer that are still stored: their deletion was interrupted between
	// its two phases.
	halfDeleted []*corev1.Pod
}

type groupState struct {
	ordinal int
	roles   map[string]map[int]*replicaState
	// recreate marks a group whose pods are deleted this round to be built
	// again (recovery, rolling update); it still counts towards replicas.
	recreate bool
	// created marks a group added this round.
	created bool
	// surge marks a surge group (see SurgeLabelKey).
	surge bool
}

type replicaState struct {
	role    string
	ordinal int
	// pods are the live pods (no deletionTimestamp) by worker index.
	pods map[int]*corev1.Pod
	// terminating are the worker indexes whose pod is being deleted.
	terminating map[int]bool
	recreate    bool
	created     bool
}

func newModel() *model { return &model{groups: map[int]*groupState{}} }

func (m *model) group(i int) *groupState {
	g := m.groups[i]
	if g == nil {
		g = &groupState{ordinal: i, roles: map[string]map[int]*replicaState{}}
		m.groups[i] = g
	}
	return g
}

func (g *groupState) replica(role string, j int) *replicaState {
	rs := g.roles[role]
	if rs == nil {
		rs = map[int]*replicaState{}
		g.roles[role] = rs
	}
	r := rs[j]
	if r == nil {
		r = &replicaState{role: role, ordinal: j, pods: map[int]*corev1.Pod{}, terminating: map[int]bool{}}
		rs[j] = r
	}
	return r
}

// buildModel sorts the pods of ModelServing ms into the model. Pods whose
// labels or names do not parse are returned as strays.
func buildModel(ms string, pods []*corev1.Pod) (*model, []*corev1.Pod) {
	m := newModel()
	var strays []*corev1.Pod
	for _, p := range pods {
		role := p.Labels[workloadv1alpha1.RoleLabelKey]
		i := GroupOrdinal(ms, p.Labels[workloadv1alpha1.GroupNameLabelKey])
		j := RoleOrdinal(role, p.Labels[workloadv1alpha1.RoleIDLabelKey])
		if role == "" || i < 0 || j < 0 {
			strays = append(strays, p)
			continue
		}
		k := WorkerIndex(ms, i, role, j, p.Name)
		if k < 0 {
			strays = append(strays, p)
			continue
		}
		g := m.group(i)
		if p.Labels[SurgeLabelKey] == "true" {
			g.surge = true
		}
		r := g.replica(role, j)
		if p.DeletionTimestamp != nil {
			r.terminating[k] = true
			if p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds == 0 && len(p.Finalizers) == 0 {
				m.halfDeleted = append(m.halfDeleted, p)
			}
			continue
		}
		r.pods[k] = p
	}
	return m, strays
}

// sortedGroups returns the group ordinals in ascending order.
func (m *model) sortedGroups() []int {
	out := make([]int, 0, len(m.groups))
	for i := range m.groups {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

// sortedReplicas returns the replica ordinals of role in ascending order.
func (g *groupState) sortedReplicas(role string) []int {
	out := make([]int, 0, len(g.roles[role]))
	for j := range g.roles[role] {
		out = append(out, j)
	}
	sort.Ints(out)
	return out
}

func (g *groupState) roleNames() []string {
	out := make([]string, 0, len(g.roles))
	for r := range g.roles {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

func (g *groupState) each(f func(r *replicaState)) {
	for _, role := range g.roleNames() {
		for _, j := range g.sortedReplicas(role) {
			f(g.roles[role][j])
		}
	}
}

func (g *groupState) livePods() []*corev1.Pod {
	var out []*corev1.Pod
	g.each(func(r *replicaState) { out = append(out, r.livePods()...) })
	return out
}

func (r *replicaState) livePods() []*corev1.Pod {
	ks := make([]int, 0, len(r.pods))
	for k := range r.pods {
		ks = append(ks, k)
	}
	sort.Ints(ks)
	out := make([]*corev1.Pod, 0, len(ks))
	for _, k := range ks {
		out = append(out, r.pods[k])
	}
	return out
}

// revision is the revision label of the replica's pods ("" if it has none).
func (r *replicaState) revision() string {
	for _, p := range r.livePods() {
		return p.Labels[workloadv1alpha1.RevisionLabelKey]
	}
	return ""
}

func (r *replicaState) roleHash() string {
	for _, p := range r.livePods() {
		return p.Labels[workloadv1alpha1.RoleTemplateHashLabelKey]
	}
	return ""
}

// revision is the revision label of the group's pods ("" if it has none).
func (g *groupState) revision() string {
	for _, p := range g.livePods() {
		return p.Labels[workloadv1alpha1.RevisionLabelKey]
	}
	return ""
}

// podReady is true for a live, running pod whose Ready condition is true.
func podReady(p *corev1.Pod) bool {
	if p == nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// running is true when the replica has all size pods and all are ready.
func (r *replicaState) running(size int) bool {
	if r.recreate || len(r.pods) != size || len(r.terminating) > 0 {
		return false
	}
	for _, p := range r.pods {
		if !podReady(p) {
			return false
		}
	}
	return true
}

// deletionCost is the sum of the pod-deletion-cost annotations of pods.
func deletionCost(pods []*corev1.Pod) int64 {
	var sum int64
	for _, p := range pods {
		if v, ok := p.Annotations[workloadv1alpha1.PodDeletionCostAnnotationKey]; ok {
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				sum += n
			}
		}
	}
	return sum
}
