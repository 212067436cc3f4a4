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
// ones from the highest ordinal, while the groups unavailable stay within
// maxUnavailable. A replaced group is deleted now and rebuilt with the
// update revision once its pods are gone. There is no surge.
func (p *plan) rollGroups() {
	partition := p.groupPartition()
	unavailable := 0
	var outdated []*groupState
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		running := p.groupRunning(g)
		if !running {
			unavailable++
		}
		if i < partition || g.recreate || g.created || !p.groupOutdated(g) {
			continue
		}
		if !running {
			p.deleteGroup(g, true)
			continue
		}
		outdated = append(outdated, g)
	}
	sort.Slice(outdated, func(a, b int) bool { return outdated[a].ordinal > outdated[b].ordinal })
	budget := updateBudget(p.groupMaxUnavailable(), unavailable)
	for _, g := range outdated[:min(budget, len(outdated))] {
		p.deleteGroup(g, true)
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
