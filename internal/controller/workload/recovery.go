package workload

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// podErrored is true when a pod failed, or when one of its containers has
// restarted while the pod is pending or running, and it is not ready now.
func podErrored(p *corev1.Pod) bool {
	if podReady(p) {
		return false
	}
	switch p.Status.Phase {
	case corev1.PodFailed:
		return true
	case corev1.PodRunning, corev1.PodPending:
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount > 0 {
				return true
			}
		}
		for _, cs := range p.Status.InitContainerStatuses {
			if cs.RestartCount > 0 {
				return true
			}
		}
	}
	return false
}

// erroredSince is when the pod stopped being ready (its Ready condition's
// last transition), else when it was created. It survives a controller
// restart, unlike a timer.
func erroredSince(p *corev1.Pod) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return p.CreationTimestamp.Time
}

// started is true when some pod of the replica has left Pending, so a
// missing pod means one was lost rather than not yet created.
func (r *replicaState) started() bool {
	for _, p := range r.pods {
		if p.Status.Phase != "" && p.Status.Phase != corev1.PodPending {
			return true
		}
	}
	return false
}

// halfDeletedAfter is how long a pod may stay marked deleted with a zero
// grace period before the controller deletes it again.
const halfDeletedAfter = 5 * time.Second

// finishDeletions deletes again the pods whose deletion was interrupted
// between its two phases (marking, then removal), for example when the
// client that deleted them went away. The API server completes such a
// deletion on a repeated DELETE; otherwise only a kubelet or the pod garbage
// collector would, and the unit could never be rebuilt.
func (p *plan) finishDeletions() {
	for _, pod := range p.m.halfDeleted {
		if wait := pod.DeletionTimestamp.Add(halfDeletedAfter).Sub(p.now); wait > 0 {
			p.requeueIn(wait)
			continue
		}
		p.delete = append(p.delete, pod)
	}
}

func (p *plan) policy() workloadv1alpha1.RecoveryPolicy {
	if p.ms.Spec.RecoveryPolicy == "" {
		return workloadv1alpha1.RoleRecreate
	}
	return p.ms.Spec.RecoveryPolicy
}

// recover applies the recovery policy to errored pods past their grace
// period and to started replicas that lost a pod:
//   - ServingGroupRecreate rebuilds the whole group;
//   - RoleRecreate rebuilds the role replica (entry, workers);
//   - None deletes only a failed pod (a restarting pod is the kubelet's
//     business) and recreates only missing pods.
func (p *plan) recover(lost map[string]bool) {
	grace := time.Duration(ptr.Deref(p.ms.Spec.Template.RestartGracePeriodSeconds, 0)) * time.Second
	policy := p.policy()
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		if g.recreate {
			continue
		}
		// A group that lost a pod to someone else's deletion is rebuilt whole
		// under ServingGroupRecreate, even when the pod was a replica's only one.
		rebuildGroup := policy == workloadv1alpha1.ServingGroupRecreate && lost[GroupName(p.ms.Name, i)] && p.groupStarted(g)
		if rebuildGroup {
			p.recovery = append(p.recovery, fmt.Sprintf("rebuilding group %s (a pod was deleted)", GroupName(p.ms.Name, i)))
		}
		g.each(func(r *replicaState) {
			if rebuildGroup || r.recreate {
				return
			}
			var errored []*corev1.Pod
			for _, pod := range r.livePods() {
				if !podErrored(pod) {
					continue
				}
				if wait := erroredSince(pod).Add(grace).Sub(p.now); wait > 0 {
					p.requeueIn(wait)
					continue
				}
				errored = append(errored, pod)
			}
			size := p.size(g, r)
			lost := r.started() && len(r.pods) < size
			if len(errored) == 0 && !lost {
				return
			}
			what := fmt.Sprintf("%s/%s", GroupName(p.ms.Name, i), RoleID(r.role, r.ordinal))
			switch policy {
			case workloadv1alpha1.ServingGroupRecreate:
				rebuildGroup = true
				p.recovery = append(p.recovery, fmt.Sprintf("rebuilding group %s (%s)", GroupName(p.ms.Name, i), what))
			case workloadv1alpha1.RoleRecreate:
				p.recovery = append(p.recovery, "rebuilding role replica "+what)
				p.deleteReplica(g, r, true)
			default:
				for _, pod := range errored {
					if pod.Status.Phase != corev1.PodFailed {
						continue
					}
					p.recovery = append(p.recovery, "replacing failed pod "+pod.Name)
					p.delete = append(p.delete, pod)
					for k, q := range r.pods {
						if q == pod {
							delete(r.pods, k)
							r.terminating[k] = true
						}
					}
				}
			}
		})
		if rebuildGroup {
			p.deleteGroup(g, true)
		}
	}
}

// groupStarted is true when some replica of g has started.
func (p *plan) groupStarted(g *groupState) bool {
	started := false
	g.each(func(r *replicaState) { started = started || r.started() })
	return started
}
