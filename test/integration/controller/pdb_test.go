package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

// pdbMinAvailable is the minAvailable of PodDisruptionBudget name in ns, or
// an error when it does not exist.
func pdbMinAvailable(ns, name string) (int, error) {
	var pdb policyv1.PodDisruptionBudget
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &pdb); err != nil {
		return 0, err
	}
	if pdb.Spec.MinAvailable == nil {
		return 0, fmt.Errorf("PodDisruptionBudget %s has no minAvailable", name)
	}
	return pdb.Spec.MinAvailable.IntValue(), nil
}

func wantPDB(ns, name string, want int) func() error {
	return func() error {
		got, err := pdbMinAvailable(ns, name)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("PodDisruptionBudget %s minAvailable %d, want %d", name, got, want)
		}
		return nil
	}
}

func wantNoPDB(ns, name string) func() error {
	return func() error {
		if _, err := pdbMinAvailable(ns, name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("PodDisruptionBudget %s: %v, want it gone", name, err)
		}
		return nil
	}
}

// TestEvictionStrategyPDBs: evictionStrategy becomes PodDisruptionBudgets
// that follow replicas, the protection level and removal of the field, and
// go with the ModelServing (foreground deletion; no garbage collector runs
// here).
func TestEvictionStrategyPDBs(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	two := intstr.FromInt32(2)
	ms := wrappers.MakeModelServing(ns, "m").Replicas(3).
		Role(wrappers.MakeRole("p").Workers(1).Obj()).
		Role(wrappers.MakeRole("d").Obj()).Obj()
	ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{
		Type: workloadv1alpha1.ServingGroupRollingUpdate,
		EvictionStrategy: &workloadv1alpha1.EvictionStrategySpec{
			ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &two},
	}
	create(t, ms)
	// 3 groups of 3 pods; keeping 2 groups allows 1 pod down.
	eventually(t, 10*time.Second, wantPDB(ns, "m", 8))

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To(int32(5)) })
	eventually(t, 10*time.Second, wantPDB(ns, "m", 12)) // 15 pods, 3 may go

	half := intstr.FromString("50%")
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.RolloutStrategy.EvictionStrategy = &workloadv1alpha1.EvictionStrategySpec{
			ProtectionLevel: workloadv1alpha1.ProtectionLevelRole, RoleMinAvailable: map[string]intstr.IntOrString{"d": half}}
	})
	// Role d: 5 single-pod replicas, keep 3.
	eventually(t, 10*time.Second, wantPDB(ns, "m-d", 3))
	eventually(t, 10*time.Second, wantNoPDB(ns, "m"))
	eventually(t, 10*time.Second, wantNoPDB(ns, "m-p"))

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.RolloutStrategy.EvictionStrategy = nil })
	eventually(t, 10*time.Second, wantNoPDB(ns, "m-d"))

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.RolloutStrategy.EvictionStrategy = &workloadv1alpha1.EvictionStrategySpec{
			ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &two}
	})
	eventually(t, 10*time.Second, wantPDB(ns, "m", 12)) // recreated
	if err := env.Client.Delete(context.Background(), getMS(t, ns, "m"), client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, wantNoPDB(ns, "m"))
}

// TestEvictionStrategyNameTaken: a PodDisruptionBudget of the same name that
// the ModelServing does not own is left alone and the conflict is reported.
func TestEvictionStrategyNameTaken(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	one := intstr.FromInt32(1)
	foreign := &policyv1.PodDisruptionBudget{}
	foreign.Namespace, foreign.Name = ns, "m"
	foreign.Spec.MinAvailable = &one
	create(t, foreign)
	ms := wrappers.MakeModelServing(ns, "m").Replicas(2).Role(wrappers.MakeRole("r").Obj()).Obj()
	ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{
		Type:             workloadv1alpha1.ServingGroupRollingUpdate,
		EvictionStrategy: &workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &one},
	}
	create(t, ms)
	eventually(t, 10*time.Second, func() error {
		if n := len(listPods(t, ns, map[string]string{workloadv1alpha1.ModelServingNameLabelKey: "m"})); n != 2 {
			return fmt.Errorf("%d pods, want 2", n)
		}
		return nil
	})
	consistently(t, time.Second, wantPDB(ns, "m", 1))
}
