package workload

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/workload/plugins"
)

// Event reasons on the ModelServing.
const (
	ReasonRoleCreating = "RoleCreating"
	ReasonRoleRunning  = "RoleRunning"
	ReasonRoleDeleting = "RoleDeleting"
	ReasonPodRecovery  = "PodRecovery"
	ReasonPluginError  = "PluginError"
	ReasonPodGroup     = "PodGroupError"
)

// plan is what one reconcile decides: the pods to delete and to create, the
// events to emit and when to look again. It is computed from the model
// without API calls, so it is tested on its own.
type plan struct {
	ms       *workloadv1alpha1.ModelServing
	revs     *revisionSet
	m        *model
	chain    *plugins.Chain
	gang     bool
	now      time.Time
	roleMode bool

	create   []*corev1.Pod
	delete   []*corev1.Pod
	creating map[string][]string // group -> role ids (RoleCreating)
	deleting map[string][]string // group -> role ids (RoleDeleting)
	recovery []string
	requeue  time.Duration
}

func newPlan(ms *workloadv1alpha1.ModelServing, revs *revisionSet, m *model, chain *plugins.Chain, gang bool, now time.Time) *plan {
	return &plan{
		ms: ms, revs: revs, m: m, chain: chain, gang: gang, now: now,
		roleMode: ms.Spec.RolloutStrategy != nil && ms.Spec.RolloutStrategy.Type == workloadv1alpha1.RoleRollingUpdate,
		creating: map[string][]string{}, deleting: map[string][]string{},
	}
}

func (p *plan) replicas() int { return int(ptr.Deref(p.ms.Spec.Replicas, 1)) }

func roleReplicas(r *workloadv1alpha1.Role) int { return int(ptr.Deref(r.Replicas, 1)) }

// groupPartition is the number of group ordinals kept on the current revision.
func (p *plan) groupPartition() int {
	rs := p.ms.Spec.RolloutStrategy
	if rs == nil || rs.RollingUpdateConfiguration == nil || p.roleMode {
		return 0
	}
	return resolvePartition(rs.RollingUpdateConfiguration.Partition, p.replicas())
}

// groupBudget is the resolved maxUnavailable and maxSurge of a
// ServingGroupRollingUpdate.
func (p *plan) groupBudget() (maxUnavailable, maxSurge int) {
	rs := p.ms.Spec.RolloutStrategy
	if rs == nil || rs.RollingUpdateConfiguration == nil {
		return 1, 0
	}
	c := rs.RollingUpdateConfiguration
	return resolveGroupBudget(c.MaxUnavailable, c.MaxSurge, p.replicas())
}

func (p *plan) rolePartition(r *workloadv1alpha1.Role) int {
	if !p.roleMode {
		return 0
	}
	return resolvePartition(r.Partition, roleReplicas(r))
}

// specRole returns the role of the current spec, or nil.
func (p *plan) specRole(name string) *workloadv1alpha1.Role {
	for i := range p.ms.Spec.Template.Roles {
		if p.ms.Spec.Template.Roles[i].Name == name {
			return &p.ms.Spec.Template.Roles[i]
		}
	}
	return nil
}

// templateFor returns the role template, its revision and role hash for
// building pods of replica r in group g: the replica's own revision if it
// has pods, else the group's revision (group rollout) or the current
// revision below the partition, else the update revision.
func (p *plan) templateFor(g *groupState, r *replicaState) (*workloadv1alpha1.Role, string, string) {
	rev := r.revision()
	if rev == "" {
		switch {
		case p.roleMode:
			if sr := p.specRole(r.role); sr != nil && r.ordinal < p.rolePartition(sr) {
				rev = p.revs.current
			}
		case g.ordinal < p.groupPartition():
			rev = p.revs.current
		default:
			if !g.created {
				rev = g.revision()
			}
		}
	}
	if rev == "" {
		rev = p.revs.update
	}
	t, rev := p.revs.template(rev)
	role := t.Role(r.role)
	if role == nil {
		t, rev = p.revs.updateTmpl, p.revs.update
		role = t.Role(r.role)
	}
	return role, rev, p.revs.roleHash(rev, r.role)
}

// size is the number of pods replica r should have.
func (p *plan) size(g *groupState, r *replicaState) int {
	role, _, _ := p.templateFor(g, r)
	if role == nil {
		return len(r.pods)
	}
	return int(role.WorkerReplicas) + 1
}

// replicaRunning is true when r is complete and all its pods are ready.
func (p *plan) replicaRunning(g *groupState, r *replicaState) bool {
	return r.running(p.size(g, r))
}

// groupRunning is true when every spec role has its replica count and every
// replica is running.
func (p *plan) groupRunning(g *groupState) bool {
	if g.recreate {
		return false
	}
	for i := range p.ms.Spec.Template.Roles {
		role := &p.ms.Spec.Template.Roles[i]
		if len(g.roles[role.Name]) != roleReplicas(role) {
			return false
		}
	}
	ok := true
	g.each(func(r *replicaState) {
		if !p.replicaRunning(g, r) {
			ok = false
		}
	})
	return ok
}

// deleteReplica deletes every live pod of r; recreate keeps it counted.
func (p *plan) deleteReplica(g *groupState, r *replicaState, recreate bool) {
	if len(r.pods) > 0 {
		p.deleting[GroupName(p.ms.Name, g.ordinal)] = append(p.deleting[GroupName(p.ms.Name, g.ordinal)], RoleID(r.role, r.ordinal))
	}
	p.delete = append(p.delete, r.livePods()...)
	r.pods = map[int]*corev1.Pod{}
	if recreate {
		r.recreate = true
		return
	}
	delete(g.roles[r.role], r.ordinal)
}

// deleteGroup deletes every live pod of g; recreate keeps it counted.
func (p *plan) deleteGroup(g *groupState, recreate bool) {
	g.each(func(r *replicaState) { p.deleteReplica(g, r, recreate) })
	if recreate {
		g.recreate = true
		return
	}
	delete(p.m.groups, g.ordinal)
}

// scaleGroups removes surplus groups and adds missing ones. Surge groups
// are not counted: the rollout adds and removes them.
func (p *plan) scaleGroups() {
	want := p.replicas()
	var regular []int
	for _, i := range p.m.sortedGroups() {
		if !p.m.groups[i].surge {
			regular = append(regular, i)
		}
	}
	n := len(regular)
	if n > want {
		partition := p.groupPartition()
		var units []scaleUnit
		for _, i := range regular {
			g := p.m.groups[i]
			units = append(units, scaleUnit{ordinal: i, protected: i < partition, ready: p.groupRunning(g), cost: deletionCost(g.livePods())})
		}
		for _, u := range scaleDownOrder(units)[:n-want] {
			p.deleteGroup(p.m.groups[u.ordinal], false)
		}
		return
	}
	used := map[int]bool{}
	for i := range p.m.groups {
		used[i] = true
	}
	for _, i := range lowestFree(used, want-n) {
		g := p.m.group(i)
		g.created = true
	}
}

// addSurgeGroup adds a surge group at ordinal i with every spec role
// replica, all to be built from the update revision.
func (p *plan) addSurgeGroup(i int) {
	g := p.m.group(i)
	g.created, g.surge = true, true
	for ri := range p.ms.Spec.Template.Roles {
		role := &p.ms.Spec.Template.Roles[ri]
		for j := 0; j < roleReplicas(role); j++ {
			g.replica(role.Name, j).created = true
		}
	}
}

// scaleRoles brings every group's role replica counts to the spec.
func (p *plan) scaleRoles() {
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		if g.recreate {
			continue
		}
		for ri := range p.ms.Spec.Template.Roles {
			role := &p.ms.Spec.Template.Roles[ri]
			want := roleReplicas(role)
			have := g.roles[role.Name]
			n := len(have)
			if n > want {
				partition := p.rolePartition(role)
				var units []scaleUnit
				for _, j := range g.sortedReplicas(role.Name) {
					r := have[j]
					units = append(units, scaleUnit{ordinal: j, protected: j < partition, ready: p.replicaRunning(g, r), cost: deletionCost(r.livePods())})
				}
				for _, u := range scaleDownOrder(units)[:n-want] {
					p.deleteReplica(g, have[u.ordinal], false)
				}
				continue
			}
			used := map[int]bool{}
			for j := range have {
				used[j] = true
			}
			for _, j := range lowestFree(used, want-n) {
				g.replica(role.Name, j).created = true
			}
		}
		if p.roleMode {
			// Replicas of roles removed from the spec go (group rollouts
			// replace whole groups instead).
			for _, name := range g.roleNames() {
				if p.specRole(name) == nil {
					for _, j := range g.sortedReplicas(name) {
						p.deleteReplica(g, g.roles[name][j], false)
					}
					delete(g.roles, name)
				}
			}
		}
	}
}

// fill builds the missing pods of every group and replica not being
// recreated this round. Names of pods still terminating are skipped until
// they are gone.
func (p *plan) fill(ctx context.Context) error {
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		if g.recreate {
			continue
		}
		var err error
		g.each(func(r *replicaState) {
			if err != nil || r.recreate {
				return
			}
			role, rev, hash := p.templateFor(g, r)
			if role == nil {
				return
			}
			fresh := len(r.pods) == 0
			made := false
			for k := 0; k <= int(role.WorkerReplicas); k++ {
				if r.pods[k] != nil || r.terminating[k] {
					continue
				}
				var pod *corev1.Pod
				pod, err = buildPod(ctx, podSpecInput{ms: p.ms, group: i, role: role, roleIdx: r.ordinal, worker: k, revision: rev, roleHash: hash, gang: p.gang, surge: g.surge, plugins: p.chain})
				if err != nil {
					err = fmt.Errorf("building pod %s: %w", PodName(p.ms.Name, i, role.Name, r.ordinal, k), err)
					return
				}
				r.pods[k] = pod
				p.create = append(p.create, pod)
				made = true
			}
			if made && fresh {
				name := GroupName(p.ms.Name, i)
				p.creating[name] = append(p.creating[name], RoleID(r.role, r.ordinal))
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eventMessages renders the role ids of m as "group: id, id; group: id".
func eventMessage(m map[string][]string) string {
	groups := make([]string, 0, len(m))
	for g := range m {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	parts := make([]string, 0, len(groups))
	for _, g := range groups {
		ids := append([]string(nil), m[g]...)
		sort.Strings(ids)
		parts = append(parts, g+": "+strings.Join(ids, ", "))
	}
	return strings.Join(parts, "; ")
}

// requeueIn asks for another look after d (the soonest wins).
func (p *plan) requeueIn(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}
