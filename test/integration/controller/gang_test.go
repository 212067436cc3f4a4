package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/test/wrappers"
)

func installCRD(t *testing.T, dir string) {
	t.Helper()
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{repoPath("test", "testdata", "crds", dir)}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
}

// podGroupClient reads PodGroups (the shared test client's scheme lacks them).
func podGroupClient(t *testing.T) client.Client {
	t.Helper()
	s, err := controllermanager.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPodGroups runs first and alone (not parallel): it installs the
// PodGroup CRD, first without then with spec.subGroupPolicy, into the
// package's control plane while the controller runs.
func TestPodGroups(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	ctx := context.Background()
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	ms := wrappers.MakeModelServing(ns, "m").Replicas(2).SchedulerName("volcano").
		Annotation(workloadv1alpha1.VolcanoQueueAnnotationKey, "q1").
		GangPolicy(map[string]int32{"p": 1}).
		NetworkTopology(&volcanov1beta1.NetworkTopologySpec{Mode: volcanov1beta1.HardNetworkTopologyMode, HighestTierAllowed: ptr.To(2)},
			&volcanov1beta1.NetworkTopologySpec{Mode: volcanov1beta1.SoftNetworkTopologyMode, HighestTierAllowed: ptr.To(1)}).
		Role(wrappers.MakeRole("p").Replicas(2).Workers(1).Requests(req).Obj()).
		Role(wrappers.MakeRole("d").Requests(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}).Obj()).Obj()
	create(t, ms)

	// Without the CRD the pods are made all the same, without gang annotations.
	waitAvailable(t, ns, "m", 2)
	for _, p := range listPods(t, ns, nil) {
		if p.Spec.SchedulerName != "volcano" {
			t.Errorf("%s scheduler %q", p.Name, p.Spec.SchedulerName)
		}
		if _, ok := p.Annotations[volcanov1beta1.KubeGroupNameAnnotationKey]; ok {
			t.Errorf("%s has a PodGroup annotation without the CRD", p.Name)
		}
	}

	// The CRD appears (before Volcano 1.14: no subGroupPolicy).
	installCRD(t, "volcano-legacy")
	pgc := podGroupClient(t)
	wantSpec := volcanov1beta1.PodGroupSpec{
		MinMember: 2*1 + 1*1,
		Queue:     "q1",
		MinResources: &corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("4"),
			corev1.ResourceMemory: resource.MustParse("2Gi"),
		},
		NetworkTopology: &volcanov1beta1.NetworkTopologySpec{Mode: volcanov1beta1.HardNetworkTopologyMode, HighestTierAllowed: ptr.To(2)},
	}
	checkPodGroups := func(want volcanov1beta1.PodGroupSpec, names ...string) func() error {
		return func() error {
			var list volcanov1beta1.PodGroupList
			if err := pgc.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			if len(list.Items) != len(names) {
				return fmt.Errorf("%d PodGroups, want %v", len(list.Items), names)
			}
			for _, n := range names {
				var pg volcanov1beta1.PodGroup
				if err := pgc.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, &pg); err != nil {
					return err
				}
				if !equality.Semantic.DeepEqual(pg.Spec, want) {
					return fmt.Errorf("PodGroup %s spec %+v, want %+v", n, pg.Spec, want)
				}
				if pg.Labels[workloadv1alpha1.GroupNameLabelKey] != n || len(pg.OwnerReferences) != 1 {
					return fmt.Errorf("PodGroup %s labels %v owners %v", n, pg.Labels, pg.OwnerReferences)
				}
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, checkPodGroups(wantSpec, "m-0", "m-1"))

	// Volcano is upgraded: the schema now has subGroupPolicy.
	installCRD(t, "volcano")
	wantSpec.SubGroupPolicy = []volcanov1beta1.SubGroupPolicySpec{
		{
			Name:            "p",
			SubGroupSize:    ptr.To[int32](2),
			MinSubGroups:    ptr.To[int32](1),
			MatchLabelKeys:  []string{workloadv1alpha1.RoleIDLabelKey},
			LabelSelector:   selector(map[string]string{workloadv1alpha1.ModelServingNameLabelKey: "m", workloadv1alpha1.RoleLabelKey: "p"}),
			NetworkTopology: &volcanov1beta1.NetworkTopologySpec{Mode: volcanov1beta1.SoftNetworkTopologyMode, HighestTierAllowed: ptr.To(1)},
		},
		{
			Name:            "d",
			SubGroupSize:    ptr.To[int32](1),
			MinSubGroups:    ptr.To[int32](1),
			MatchLabelKeys:  []string{workloadv1alpha1.RoleIDLabelKey},
			LabelSelector:   selector(map[string]string{workloadv1alpha1.ModelServingNameLabelKey: "m", workloadv1alpha1.RoleLabelKey: "d"}),
			NetworkTopology: &volcanov1beta1.NetworkTopologySpec{Mode: volcanov1beta1.SoftNetworkTopologyMode, HighestTierAllowed: ptr.To(1)},
		},
	}
	eventually(t, 30*time.Second, checkPodGroups(wantSpec, "m-0", "m-1"))

	// New pods join their group's gang.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](3) })
	eventually(t, 20*time.Second, checkPodGroups(wantSpec, "m-0", "m-1", "m-2"))
	eventually(t, 10*time.Second, func() error {
		pods := listPods(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-2", workloadv1alpha1.RoleIDLabelKey: "p-1"})
		if len(pods) != 2 {
			return fmt.Errorf("pods %v", podNames(pods))
		}
		for _, p := range pods {
			if p.Annotations[volcanov1beta1.KubeGroupNameAnnotationKey] != "m-2" || p.Annotations["volcano.sh/task-spec"] != "p-1" {
				return fmt.Errorf("%s annotations %v", p.Name, p.Annotations)
			}
		}
		return nil
	})

	// A deleted PodGroup comes back; scale-down removes the groups' PodGroups.
	var pg volcanov1beta1.PodGroup
	if err := pgc.Get(ctx, types.NamespacedName{Namespace: ns, Name: "m-0"}, &pg); err != nil {
		t.Fatal(err)
	}
	if err := pgc.Delete(ctx, &pg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var again volcanov1beta1.PodGroup
		if err := pgc.Get(ctx, types.NamespacedName{Namespace: ns, Name: "m-0"}, &again); err != nil {
			return err
		}
		if again.UID == pg.UID {
			return fmt.Errorf("not recreated")
		}
		return nil
	})
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](1) })
	eventually(t, 20*time.Second, checkPodGroups(wantSpec, "m-0"))

	// Leaving volcano drops the PodGroups.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.SchedulerName = "default-scheduler" })
	eventually(t, 20*time.Second, checkPodGroups(wantSpec))
}

func selector(m map[string]string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: m}
}
