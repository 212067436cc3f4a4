package workload

import (
	"sort"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// groupUpdated is true when every live pod of g was built from the update
// revision (ServingGroupRollingUpdate) or from the update revision's role
// template, with no role left that the spec removed (RoleRollingUpdate).
func (p *plan) groupUpdated(g *groupState) bool {
	return p.groupAt(g, p.revs.update)
}

// groupAt is true when g is complete (every spec role has its replicas,
// each with pods) and at revision rev (see groupUpdated). An incomplete group
// is at no revision, so losing a protected replica never completes a rollout.
func (p *plan) groupAt(g *groupState, rev string) bool {
	t, ok := p.revs.templates[rev]
	if !ok {
		return false
	}
	for i := range p.ms.Spec.Template.Roles {
		role := &p.ms.Spec.Template.Roles[i]
		if len(g.roles[role.Name]) != roleReplicas(role) {
			return false
		}
		for _, r := range g.roles[role.Name] {
			if len(r.pods) == 0 {
				return false
			}
		}
	}
	at := true
	g.each(func(r *replicaState) {
		for _, pod := range r.pods {
			if p.roleMode {
				if t.Role(r.role) == nil || pod.Labels[workloadv1alpha1.RoleTemplateHashLabelKey] != p.revs.roleHash(rev, r.role) {
					at = false
				}
			} else if pod.Labels[workloadv1alpha1.RevisionLabelKey] != rev {
				at = false
			}
		}
	})
	return at
}

// groupOutdated is true when some live pod of g was built from another
// revision than the update revision (ServingGroupRollingUpdate).
func (p *plan) groupOutdated(g *groupState) bool {
	outdated := false
	g.each(func(r *replicaState) {
		for _, pod := range r.pods {
			if pod.Labels[workloadv1alpha1.RevisionLabelKey] != p.revs.update {
				outdated = true
			}
		}
	})
	return outdated
}

// rollGroups replaces outdated groups at or above the partition:
// not-running ones at once (they are unavailable anyway), then running
// ones from the highest ordinal, while at least replicas − maxUnavailable
// groups stay running. A replaced group is deleted now and rebuilt at the
// same ordinal with the update revision once its pods are gone, so group
// and pod names stay stable.
//
// With maxSurge, up to that many surge groups (see SurgeLabelKey) on the
// update revision are added at the lowest free ordinals at or above
// spec.replicas while outdated groups remain; being running groups, they
// let old groups go without dropping below the floor. They are removed,
// within the same floor, once fewer outdated groups remain than surge
// groups. Groups below the partition are never replaced, so surge counts
// only the groups at or above it.
func (p *plan) rollGroups() {
	partition := p.groupPartition()
	maxUnavailable, maxSurge := p.groupBudget()
	running, pending := 0, 0
	var outdated, surge []*groupState
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		ok := p.groupRunning(g)
		if ok {
			running++
		}
		if g.surge {
			// A surge group left from an earlier update revision serves
			// nothing new: gone at once when not running, else first
			// among the surplus.
			if !ok && p.groupOutdated(g) {
				p.deleteGroup(g, false)
				continue
			}
			surge = append(surge, g)
			continue
		}
		if i < partition || g.recreate || g.created || !p.groupOutdated(g) {
			continue
		}
		pending++
		if !ok {
			p.deleteGroup(g, true)
			continue
		}
		outdated = append(outdated, g)
	}
	budget := running - (p.replicas() - maxUnavailable)

	sort.Slice(outdated, func(a, b int) bool { return outdated[a].ordinal > outdated[b].ordinal })
	n := min(max(budget, 0), len(outdated))
	for _, g := range outdated[:n] {
		p.deleteGroup(g, true)
	}
	budget -= n

	p.settleSurge(surge, min(maxSurge, pending), budget)
}

// settleSurge brings the surge groups to want: it adds the missing ones, or
// removes the surplus, dying, stale and not-running ones first (they serve
// nothing), running ones only while budget (running groups above the floor)
// lasts, highest ordinal first.
func (p *plan) settleSurge(surge []*groupState, want, budget int) {
	if len(surge) < want {
		added := 0
		for i := p.replicas(); added < want-len(surge); i++ {
			if _, taken := p.m.groups[i]; !taken {
				p.addSurgeGroup(i)
				added++
			}
		}
		return
	}
	type unit struct {
		g                   *groupState
		dying, stale, ready bool
	}
	units := make([]unit, 0, len(surge))
	for _, g := range surge {
		units = append(units, unit{g: g, dying: len(g.livePods()) == 0, stale: p.groupOutdated(g), ready: p.groupRunning(g)})
	}
	sort.SliceStable(units, func(a, b int) bool {
		x, y := units[a], units[b]
		if x.dying != y.dying {
			return x.dying
		}
		if x.stale != y.stale {
			return x.stale
		}
		if x.ready != y.ready {
			return !x.ready
		}
		return x.g.ordinal > y.g.ordinal
	})
	for _, u := range units[:len(units)-want] {
		switch {
		case u.dying:
		case !u.ready:
			p.deleteGroup(u.g, false)
		case budget > 0:
			p.deleteGroup(u.g, false)
			budget--
		}
	}
}

// dropSurge removes every surge group; RoleRollingUpdate has no surge, so
// they are only left over from a group rollout whose strategy changed.
func (p *plan) dropSurge() {
	for _, i := range p.m.sortedGroups() {
		if g := p.m.groups[i]; g.surge {
			p.deleteGroup(g, false)
		}
	}
}

// rollRoles replaces outdated role replicas in every group: per role, the
// not-running ones at once, then running ones from the highest ordinal
// within the role's maxUnavailable (unset: all at once). Replicas below the
// role's partition keep their template.
func (p *plan) rollRoles() {
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		if g.recreate {
			continue
		}
		for ri := range p.ms.Spec.Template.Roles {
			role := &p.ms.Spec.Template.Roles[ri]
			want := p.revs.roleHash(p.revs.update, role.Name)
			partition := p.rolePartition(role)
			unavailable := 0
			var outdated []*replicaState
			for _, j := range g.sortedReplicas(role.Name) {
				r := g.roles[role.Name][j]
				running := p.replicaRunning(g, r)
				if !running {
					unavailable++
				}
				if j < partition || r.recreate || r.created || len(r.pods) == 0 || r.roleHash() == want {
					continue
				}
				if !running {
					p.deleteReplica(g, r, true)
					continue
				}
				outdated = append(outdated, r)
			}
			sort.Slice(outdated, func(a, b int) bool { return outdated[a].ordinal > outdated[b].ordinal })
			maxU := resolveMaxUnavailable(role.MaxUnavailable, roleReplicas(role), roleReplicas(role))
			for _, r := range outdated[:min(updateBudget(maxU, unavailable), len(outdated))] {
				p.deleteReplica(g, r, true)
			}
		}
	}
}
