package controller

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func groupsOf(pods []corev1.Pod) []string {
	seen := map[string]bool{}
	for _, p := range pods {
		seen[p.Labels[workloadv1alpha1.GroupNameLabelKey]] = true
	}
	var out []string
	for g := range seen {
		out = append(out, g)
	}
	return sortStrings(out)
}

func wantGroups(t *testing.T, ns string, want ...string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		if got := groupsOf(listPods(t, ns, nil)); !slices.Equal(got, want) {
			return fmt.Errorf("groups = %v, want %v", got, want)
		}
		return nil
	})
}

func serviceNames(t *testing.T, ns string) []string {
	t.Helper()
	var svcs corev1.ServiceList
	if err := env.Client.List(context.Background(), &svcs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range svcs.Items {
		out = append(out, s.Name)
	}
	return sortStrings(out)
}

func TestGroupScaleUpAndDown(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(3).Role(wrappers.MakeRole("r").Workers(1).Obj()).Obj())
	wantGroups(t, ns, "m-0", "m-1", "m-2")
	waitAvailable(t, ns, "m", 3)

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](5) })
	wantGroups(t, ns, "m-0", "m-1", "m-2", "m-3", "m-4")
	waitAvailable(t, ns, "m", 5)

	// Scale-down removes the highest ordinals and their headless Services.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](2) })
	wantGroups(t, ns, "m-0", "m-1")
	eventually(t, 10*time.Second, func() error {
		if got := serviceNames(t, ns); !slices.Equal(got, []string{"m-0-r-0-0", "m-1-r-0-0"}) {
			return fmt.Errorf("services = %v", got)
		}
		return nil
	})
	waitAvailable(t, ns, "m", 2)

	// Scale-up fills the lowest missing ordinals after a hole appears.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](0) })
	wantGroups(t, ns)
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](1) })
	wantGroups(t, ns, "m-0")
}

func TestRoleScaleUpAndDown(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(1).
		Role(wrappers.MakeRole("p").Replicas(1).Obj()).
		Role(wrappers.MakeRole("d").Replicas(1).Obj()).Obj())
	wantPods(t, ns, nil, "m-0-p-0-0", "m-0-d-0-0")
	waitAvailable(t, ns, "m", 1)
	d := listPods(t, ns, map[string]string{workloadv1alpha1.RoleLabelKey: "d"})[0]

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](3) })
	wantPods(t, ns, nil, "m-0-p-0-0", "m-0-p-1-0", "m-0-p-2-0", "m-0-d-0-0")
	waitAvailable(t, ns, "m", 1)

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](1) })
	wantPods(t, ns, nil, "m-0-p-0-0", "m-0-d-0-0")
	// Scaling a role touches neither the other role nor the group.
	if got := listPods(t, ns, map[string]string{workloadv1alpha1.RoleLabelKey: "d"})[0]; got.UID != d.UID {
		t.Error("role d was recreated by scaling role p")
	}
}

// markCost sets the pod-deletion-cost of every pod matching sel.
func markCost(t *testing.T, ns string, sel map[string]string, cost int) {
	t.Helper()
	for _, p := range listPods(t, ns, sel) {
		p := p
		patch := client.MergeFrom(p.DeepCopy())
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[workloadv1alpha1.PodDeletionCostAnnotationKey] = strconv.Itoa(cost)
		if err := env.Client.Patch(context.Background(), &p, patch); err != nil {
			t.Fatal(err)
		}
	}
}

func TestScaleDownByDeletionCost(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(3).Role(wrappers.MakeRole("r").Replicas(3).Obj()).Obj())
	waitAvailable(t, ns, "m", 3)

	// Groups: m-1 is cheapest, so it goes although it is not the highest.
	markCost(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-0"}, 100)
	markCost(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-1"}, -5)
	markCost(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-2"}, 50)
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](2) })
	wantGroups(t, ns, "m-0", "m-2")

	// Roles: in every group, replica r-0 is cheapest.
	markCost(t, ns, map[string]string{workloadv1alpha1.RoleIDLabelKey: "r-0"}, -10)
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](2) })
	wantPods(t, ns, nil, "m-0-r-1-0", "m-0-r-2-0", "m-2-r-1-0", "m-2-r-2-0")
}

func TestScaleDownNotReadyFirst(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	k := startKubelet(t, ns, 0)
	k.hold("m-0-r-0-0")
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(3).Role(wrappers.MakeRole("r").Replicas(2).Obj()).Obj())
	wantPods(t, ns, nil, "m-0-r-0-0", "m-0-r-1-0", "m-1-r-0-0", "m-1-r-1-0", "m-2-r-0-0", "m-2-r-1-0")
	eventually(t, 20*time.Second, func() error {
		if ms := getMS(t, ns, "m"); ms.Status.AvailableReplicas != 2 {
			return fmt.Errorf("available = %d, want 2", ms.Status.AvailableReplicas)
		}
		return nil
	})
	// The not-ready group m-0 goes first, although it has the lowest ordinal.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](2) })
	wantGroups(t, ns, "m-1", "m-2")
	// Within m-1, replica r-0 turns not ready and goes before r-1; in m-2
	// the highest ordinal goes.
	k.hold("m-1-r-0-0")
	for _, p := range listPods(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-1", workloadv1alpha1.RoleIDLabelKey: "r-0"}) {
		if err := setPodStatus(context.Background(), &p, corev1.PodRunning, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, func() error {
		if ms := getMS(t, ns, "m"); ms.Status.AvailableReplicas != 1 {
			return fmt.Errorf("available = %d, want 1", ms.Status.AvailableReplicas)
		}
		return nil
	})
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](1) })
	wantPods(t, ns, nil, "m-1-r-1-0", "m-2-r-0-0")
	waitAvailable(t, ns, "m", 2)
}
