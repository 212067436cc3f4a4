package workload

import (
	"context"
	"errors"
	"fmt"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// PDBName is the name of the PodDisruptionBudget of a ModelServing
// (protectionLevel ServingGroup) or of one of its roles (protectionLevel Role).
func PDBName(ms, role string) string {
	if role == "" {
		return ms
	}
	return ms + "-" + role
}

// evictablePods is the minAvailable, in pods, of a budget over units of
// podsPerUnit pods each, total of them desired, of which keep must survive.
// A PDB counts pods, and evicting any one pod of a unit takes the unit down,
// so at most total − keep pods may be disrupted at once; that guarantees
// keep units whichever pods a drain picks. It is conservative: one
// not-ready pod uses up a unit's share even if its unit has others.
func evictablePods(total, podsPerUnit, keep int) int32 {
	if keep <= 0 {
		return 0
	}
	keep = min(keep, total)
	return int32(total*podsPerUnit - (total - keep))
}

// keepUnits resolves a minAvailable (a number, or a percentage of total
// rounded up, as a PDB does) into a count in [0, total].
func keepUnits(v intstr.IntOrString, total int) int {
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, total, true)
	if err != nil || n < 0 {
		return 0
	}
	return min(n, total)
}

// desiredPDBs is the PodDisruptionBudgets spec.rolloutStrategy.evictionStrategy
// asks for, by name: with protectionLevel ServingGroup one over all the
// pods of the ModelServing keeping minAvailable groups; with Role one per
// listed role over that role's pods keeping roleMinAvailable replicas of
// the role across all groups. Roles not in the spec get none.
func desiredPDBs(ms *workloadv1alpha1.ModelServing) map[string]*policyv1.PodDisruptionBudget {
	out := map[string]*policyv1.PodDisruptionBudget{}
	rs := ms.Spec.RolloutStrategy
	if rs == nil || rs.EvictionStrategy == nil {
		return out
	}
	es := rs.EvictionStrategy
	groups := int(ptr.Deref(ms.Spec.Replicas, 1))
	build := func(role string, minAvailable int32) *policyv1.PodDisruptionBudget {
		sel := map[string]string{workloadv1alpha1.ModelServingNameLabelKey: ms.Name}
		if role != "" {
			sel[workloadv1alpha1.RoleLabelKey] = role
		}
		return &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{
				Name:            PDBName(ms.Name, role),
				Namespace:       ms.Namespace,
				Labels:          map[string]string{workloadv1alpha1.ModelServingNameLabelKey: ms.Name},
				OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
			},
			Spec: policyv1.PodDisruptionBudgetSpec{
				MinAvailable: ptr.To(intstr.FromInt32(minAvailable)),
				Selector:     &metav1.LabelSelector{MatchLabels: sel},
				// A pod that is not ready serves nothing; keeping it from
				// eviction would only stall a drain.
				UnhealthyPodEvictionPolicy: ptr.To(policyv1.AlwaysAllow),
			},
		}
	}
	switch es.ProtectionLevel {
	case workloadv1alpha1.ProtectionLevelRole:
		for i := range ms.Spec.Template.Roles {
			role := &ms.Spec.Template.Roles[i]
			v, ok := es.RoleMinAvailable[role.Name]
			if !ok {
				continue
			}
			total := groups * roleReplicas(role)
			pdb := build(role.Name, evictablePods(total, int(role.WorkerReplicas)+1, keepUnits(v, total)))
			out[pdb.Name] = pdb
		}
	default: // ServingGroup, the schema default
		if es.MinAvailable == nil {
			return out
		}
		perGroup := 0
		for i := range ms.Spec.Template.Roles {
			role := &ms.Spec.Template.Roles[i]
			perGroup += roleReplicas(role) * (int(role.WorkerReplicas) + 1)
		}
		pdb := build("", evictablePods(groups, perGroup, keepUnits(*es.MinAvailable, groups)))
		out[pdb.Name] = pdb
	}
	return out
}

// syncPDBs creates, updates and deletes the PodDisruptionBudgets of ms to
// match desired (nil deletes them all).
func (r *Reconciler) syncPDBs(ctx context.Context, ms *workloadv1alpha1.ModelServing, desired map[string]*policyv1.PodDisruptionBudget) error {
	var have policyv1.PodDisruptionBudgetList
	if err := r.List(ctx, &have, client.InNamespace(ms.Namespace), client.MatchingFields{ownerIndex: ms.Name}); err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for i := range have.Items {
		pdb := &have.Items[i]
		if !ownedBy(pdb, ms) || pdb.DeletionTimestamp != nil {
			continue
		}
		seen[pdb.Name] = true
		want := desired[pdb.Name]
		if want == nil {
			if err := r.Delete(ctx, pdb, client.Preconditions{UID: &pdb.UID}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("deleting PodDisruptionBudget %s: %w", pdb.Name, err))
			}
			continue
		}
		if equality.Semantic.DeepEqual(pdb.Spec.MinAvailable, want.Spec.MinAvailable) &&
			equality.Semantic.DeepEqual(pdb.Spec.Selector, want.Spec.Selector) &&
			equality.Semantic.DeepEqual(pdb.Spec.UnhealthyPodEvictionPolicy, want.Spec.UnhealthyPodEvictionPolicy) &&
			pdb.Spec.MaxUnavailable == nil {
			continue
		}
		pdb.Spec = want.Spec
		if err := r.Update(ctx, pdb); err != nil && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("updating PodDisruptionBudget %s: %w", pdb.Name, err))
		}
	}
	for name, pdb := range desired {
		if seen[name] {
			continue
		}
		if err := r.Create(ctx, pdb); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Not in the cache as ours: another object holds the name.
				err = fmt.Errorf("spec.rolloutStrategy.evictionStrategy: PodDisruptionBudget %s exists and is not owned by this ModelServing", name)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
