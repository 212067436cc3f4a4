package workload

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestDesiredPDBs(t *testing.T) {
	ms := wrappers.MakeModelServing("ns", "m").Replicas(4).
		Role(wrappers.MakeRole("p").Replicas(2).Workers(1).Obj()).
		Role(wrappers.MakeRole("d").Obj()).Obj()
	if got := desiredPDBs(ms); len(got) != 0 {
		t.Fatalf("no eviction strategy, got %v", got)
	}
	three, zero, half := intstr.FromInt(3), intstr.FromInt(0), intstr.FromString("50%")
	ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{EvictionStrategy: &workloadv1alpha1.EvictionStrategySpec{
		ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &three}}
	// 4 groups of 2×2+1 = 5 pods; keeping 3 groups allows 1 pod down.
	got := desiredPDBs(ms)
	if pdb := got["m"]; len(got) != 1 || pdb == nil || pdb.Spec.MinAvailable.IntValue() != 19 ||
		pdb.Spec.Selector.MatchLabels[workloadv1alpha1.ModelServingNameLabelKey] != "m" || len(pdb.Spec.Selector.MatchLabels) != 1 {
		t.Fatalf("ServingGroup PDBs %v", got)
	}
	ms.Spec.RolloutStrategy.EvictionStrategy.MinAvailable = &zero
	if got := desiredPDBs(ms)["m"]; got.Spec.MinAvailable.IntValue() != 0 {
		t.Fatalf("minAvailable 0 gave %v", got.Spec.MinAvailable)
	}

	ms.Spec.RolloutStrategy.EvictionStrategy = &workloadv1alpha1.EvictionStrategySpec{
		ProtectionLevel: workloadv1alpha1.ProtectionLevelRole, RoleMinAvailable: map[string]intstr.IntOrString{"p": half, "gone": half}}
	// Role p: 8 replicas of 2 pods; keeping 4 allows 4 pods down of 16.
	got = desiredPDBs(ms)
	if pdb := got["m-p"]; len(got) != 1 || pdb == nil || pdb.Spec.MinAvailable.IntValue() != 12 ||
		pdb.Spec.Selector.MatchLabels[workloadv1alpha1.RoleLabelKey] != "p" {
		t.Fatalf("Role PDBs %v", got)
	}
}

func TestEvictablePods(t *testing.T) {
	for _, c := range []struct{ total, per, keep, want int }{
		{3, 1, 2, 2}, {3, 2, 3, 6}, {3, 2, 5, 6}, {3, 2, 0, 0}, {0, 2, 1, 0},
	} {
		if got := evictablePods(c.total, c.per, c.keep); int(got) != c.want {
			t.Errorf("evictablePods(%d, %d, %d) = %d, want %d", c.total, c.per, c.keep, got, c.want)
		}
	}
}
