package controller

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func setImage(image string) func(*workloadv1alpha1.ModelServing) {
	return func(ms *workloadv1alpha1.ModelServing) {
		for i := range ms.Spec.Template.Roles {
			r := &ms.Spec.Template.Roles[i]
			r.EntryTemplate.Spec.Containers[0].Image = image
			if r.WorkerTemplate != nil {
				r.WorkerTemplate.Spec.Containers[0].Image = image
			}
		}
	}
}

// unavailableGroups counts the groups among want whose pods are not all
// present and ready.
func unavailableGroups(pods []corev1.Pod, groups []string, podsPerGroup int) int {
	ready := map[string]int{}
	for i := range pods {
		if podIsReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
			ready[pods[i].Labels[workloadv1alpha1.GroupNameLabelKey]]++
		}
	}
	n := 0
	for _, g := range groups {
		if ready[g] < podsPerGroup {
			n++
		}
	}
	return n
}

func podSummary(pods []corev1.Pod) string {
	out := ""
	for i := range pods {
		p := &pods[i]
		out += fmt.Sprintf("%s(rev=%s ready=%v phase=%s del=%v", p.Name, p.Labels[workloadv1alpha1.RevisionLabelKey], podIsReady(p), p.Status.Phase, p.DeletionTimestamp != nil)
		if p.DeletionTimestamp != nil {
			out += fmt.Sprintf(" finalizers=%v grace=%v node=%q at=%s", p.Finalizers, ptr.Deref(p.DeletionGracePeriodSeconds, -1), p.Spec.NodeName, p.DeletionTimestamp.Format(time.RFC3339Nano))
		}
		out += ") "
	}
	return out
}

// watchMax samples f until stop (or the end of the test) and records its maximum.
func watchMax(t *testing.T, f func() int) (stop func() int) {
	var max atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if v := int64(f()); v > max.Load() {
				max.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() int { once.Do(func() { close(done); wg.Wait() }); return int(max.Load()) }
	t.Cleanup(func() { stop() })
	return stop
}

func podsAtRevision(pods []corev1.Pod, rev string) int {
	n := 0
	for _, p := range pods {
		if p.Labels[workloadv1alpha1.RevisionLabelKey] == rev {
			n++
		}
	}
	return n
}

func waitRolledOut(t *testing.T, ns, name string, replicas int32, pods int) *workloadv1alpha1.ModelServing {
	t.Helper()
	var ms *workloadv1alpha1.ModelServing
	eventually(t, 60*time.Second, func() error {
		ms = getMS(t, ns, name)
		st := ms.Status
		if st.ObservedGeneration != ms.Generation || st.CurrentRevision != st.UpdateRevision || st.UpdatedReplicas != replicas || st.AvailableReplicas != replicas {
			return fmt.Errorf("not rolled out: %+v; pods: %s", st, podSummary(listPods(t, ns, nil)))
		}
		all := listPods(t, ns, nil)
		if len(all) != pods || podsAtRevision(all, st.UpdateRevision) != pods {
			return fmt.Errorf("%d pods, %d at %s; want %d", len(all), podsAtRevision(all, st.UpdateRevision), st.UpdateRevision, pods)
		}
		return nil
	})
	return ms
}

func TestRollingUpdateMaxUnavailable(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 400*time.Millisecond)
	two := intstr.FromInt32(2)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(4).GroupRollingUpdate(&two, nil).
		Role(wrappers.MakeRole("r").Workers(1).Obj()).Obj())
	waitAvailable(t, ns, "m", 4)
	groups := []string{"m-0", "m-1", "m-2", "m-3"}
	stop := watchMax(t, func() int { return unavailableGroups(listPods(t, ns, nil), groups, 2) })
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	waitRolledOut(t, ns, "m", 4, 8)
	if got := stop(); got > 2 {
		t.Fatalf("%d groups were unavailable at once, maxUnavailable is 2", got)
	} else if got == 0 {
		t.Fatal("no group was ever seen unavailable; the rollout did not replace pods")
	}
}

func TestRollingUpdateBadImageStaysWithinBudget(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(4).Role(wrappers.MakeRole("r").Obj()).Obj())
	waitAvailable(t, ns, "m", 4)
	updateMS(t, ns, "m", setImage(BadImage))
	check := func() error {
		bad := 0
		for _, p := range listPods(t, ns, nil) {
			if p.Spec.Containers[0].Image == BadImage {
				bad++
			}
		}
		ms := getMS(t, ns, "m")
		if bad != 1 || ms.Status.AvailableReplicas != 3 || !conditionTrue(ms, workloadv1alpha1.ModelServingUpdateInProgress) {
			return fmt.Errorf("bad pods = %d, status %+v", bad, ms.Status)
		}
		return nil
	}
	eventually(t, 20*time.Second, check)
	consistently(t, 2*time.Second, check)

	// Fixing the image finishes the rollout, replacing the bad group too.
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	waitRolledOut(t, ns, "m", 4, 4)
}

func TestPartitionProtectsAndRebuildsOldRevision(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	two := intstr.FromInt32(2)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(4).GroupRollingUpdate(nil, &two).
		Role(wrappers.MakeRole("r").Obj()).Obj())
	waitAvailable(t, ns, "m", 4)
	oldRev := getMS(t, ns, "m").Status.UpdateRevision
	updateMS(t, ns, "m", setImage("nginx:alpine"))

	imageOf := func(name string) string {
		var p corev1.Pod
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
			return err.Error()
		}
		return p.Spec.Containers[0].Image
	}
	partitioned := func() error {
		ms := getMS(t, ns, "m")
		st := ms.Status
		if st.UpdateRevision == oldRev || st.CurrentRevision != oldRev || st.UpdatedReplicas != 2 || st.CurrentReplicas != 2 || st.AvailableReplicas != 4 {
			return fmt.Errorf("status %+v", st)
		}
		for name, img := range map[string]string{"m-0-r-0-0": wrappers.DefaultImage, "m-1-r-0-0": wrappers.DefaultImage, "m-2-r-0-0": "nginx:alpine", "m-3-r-0-0": "nginx:alpine"} {
			if got := imageOf(name); got != img {
				return fmt.Errorf("%s image %s, want %s", name, got, img)
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, partitioned)
	consistently(t, time.Second, partitioned)

	// A protected group that loses its pod is rebuilt from its own (old) revision.
	before := uidsByName(listPods(t, ns, nil))
	deletePod(t, ns, "m-0-r-0-0")
	replaced(t, ns, before, "m-0-r-0-0")
	if got := getPod(t, ns, "m-0-r-0-0"); got.Spec.Containers[0].Image != wrappers.DefaultImage || got.Labels[workloadv1alpha1.RevisionLabelKey] != oldRev {
		t.Fatalf("protected group rebuilt with %s at %s", got.Spec.Containers[0].Image, got.Labels[workloadv1alpha1.RevisionLabelKey])
	}
	eventually(t, 20*time.Second, partitioned)
	// Both revisions are kept as ControllerRevisions.
	var crs appsv1.ControllerRevisionList
	if err := env.Client.List(context.Background(), &crs, client.InNamespace(ns)); err != nil || len(crs.Items) != 2 {
		t.Fatalf("controller revisions: %d (%v), want 2", len(crs.Items), err)
	}

	// Scale-up beyond the partition gets the update revision.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](5) })
	eventually(t, 20*time.Second, func() error {
		if img := listPods(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-4"}); len(img) != 1 || img[0].Spec.Containers[0].Image != "nginx:alpine" {
			return fmt.Errorf("m-4 pods %v", podNames(img))
		}
		return nil
	})
	// Scale-down removes unprotected groups first, highest first.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](3) })
	wantGroups(t, ns, "m-0", "m-1", "m-2")

	// Lifting the partition completes the rollout and drops the old revision.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.RolloutStrategy.RollingUpdateConfiguration.Partition = nil
	})
	waitRolledOut(t, ns, "m", 3, 3)
	eventually(t, 10*time.Second, func() error {
		if err := env.Client.List(context.Background(), &crs, client.InNamespace(ns)); err != nil || len(crs.Items) != 1 {
			return fmt.Errorf("controller revisions: %d (%v), want 1", len(crs.Items), err)
		}
		return nil
	})
}

func TestRoleRollingUpdate(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 300*time.Millisecond)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(1).RoleRollingUpdate().
		Role(wrappers.MakeRole("p").Replicas(3).MaxUnavailable(intstr.FromInt32(1)).Obj()).
		Role(wrappers.MakeRole("d").Workers(1).Obj()).Obj())
	waitAvailable(t, ns, "m", 1)
	before := uidsByName(listPods(t, ns, nil))

	stop := watchMax(t, func() int {
		ready := 0
		for _, p := range listPods(t, ns, map[string]string{workloadv1alpha1.RoleLabelKey: "p"}) {
			if podIsReady(&p) {
				ready++
			}
		}
		return 3 - ready
	})
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "nginx:alpine"
	})
	eventually(t, 60*time.Second, func() error {
		ms := getMS(t, ns, "m")
		if ms.Status.UpdatedReplicas != 1 || ms.Status.CurrentRevision != ms.Status.UpdateRevision || ms.Status.AvailableReplicas != 1 {
			return fmt.Errorf("status %+v", ms.Status)
		}
		for _, p := range listPods(t, ns, map[string]string{workloadv1alpha1.RoleLabelKey: "p"}) {
			if p.Spec.Containers[0].Image != "nginx:alpine" {
				return fmt.Errorf("%s not updated", p.Name)
			}
		}
		return nil
	})
	if got := stop(); got > 1 {
		t.Errorf("%d replicas of role p were unavailable at once, maxUnavailable is 1", got)
	}
	// The unchanged role keeps its pods: the group is not recreated.
	kept(t, ns, before, "m-0-d-0-0", "m-0-d-0-1")
}

func TestRoleRollingUpdatePartition(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(1).RoleRollingUpdate().
		Role(wrappers.MakeRole("p").Replicas(3).Partition(intstr.FromInt32(1)).Obj()).Obj())
	waitAvailable(t, ns, "m", 1)
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	images := func() error {
		for name, img := range map[string]string{"m-0-p-0-0": wrappers.DefaultImage, "m-0-p-1-0": "nginx:alpine", "m-0-p-2-0": "nginx:alpine"} {
			var p corev1.Pod
			if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
				return err
			}
			if got := p.Spec.Containers[0].Image; got != img {
				return fmt.Errorf("%s image %s, want %s", name, got, img)
			}
		}
		return nil
	}
	eventually(t, 30*time.Second, images)
	consistently(t, time.Second, images)
	// The protected replica is rebuilt from its old template.
	before := uidsByName(listPods(t, ns, nil))
	deletePod(t, ns, "m-0-p-0-0")
	replaced(t, ns, before, "m-0-p-0-0")
	eventually(t, 10*time.Second, images)
	// Scaling the role up adds updated replicas; down removes unprotected ones.
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](4) })
	eventually(t, 20*time.Second, func() error {
		pods := listPods(t, ns, map[string]string{workloadv1alpha1.RoleIDLabelKey: "p-3"})
		if len(pods) != 1 || pods[0].Spec.Containers[0].Image != "nginx:alpine" {
			return fmt.Errorf("p-3: %v", podNames(pods))
		}
		return nil
	})
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](1) })
	wantPods(t, ns, nil, "m-0-p-0-0")
}

// TestWhatRolls pins the decisions on which fields roll pods: schedulerName,
// gangPolicy, networkTopology, replica counts and recovery settings do not;
// pod templates and plugins do.
func TestWhatRolls(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(1).Role(wrappers.MakeRole("r").Obj()).Obj())
	waitAvailable(t, ns, "m", 1)
	rev := getMS(t, ns, "m").Status.UpdateRevision
	before := uidsByName(listPods(t, ns, nil))

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.SchedulerName = "other-scheduler"
		ms.Spec.Template.GangPolicy = &workloadv1alpha1.GangPolicy{MinRoleReplicas: map[string]int32{"r": 1}}
		ms.Spec.Template.RestartGracePeriodSeconds = ptr.To[int64](30)
		ms.Spec.RecoveryPolicy = workloadv1alpha1.NoneRestartPolicy
	})
	consistently(t, 2*time.Second, func() error {
		ms := getMS(t, ns, "m")
		if ms.Status.UpdateRevision != rev {
			return fmt.Errorf("revision changed to %s", ms.Status.UpdateRevision)
		}
		if now := uidsByName(listPods(t, ns, nil)); now["m-0-r-0-0"] != before["m-0-r-0-0"] {
			return fmt.Errorf("pod replaced")
		}
		return nil
	})

	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.Plugins = []workloadv1alpha1.PluginSpec{{Name: "lws-standard-labels", Type: workloadv1alpha1.PluginTypeBuiltIn}}
	})
	replaced(t, ns, before, "m-0-r-0-0")
	p := getPod(t, ns, "m-0-r-0-0")
	if p.Spec.SchedulerName != "other-scheduler" {
		t.Errorf("new pod scheduler %q", p.Spec.SchedulerName)
	}
	if p.Labels["leaderworkerset.sigs.k8s.io/name"] != "m" {
		t.Errorf("plugin labels missing: %v", p.Labels)
	}
}

func TestRoleEvents(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(2).Role(wrappers.MakeRole("r").Obj()).Obj())
	waitAvailable(t, ns, "m", 2)
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](1) })
	eventually(t, 20*time.Second, func() error {
		var evs corev1.EventList
		if err := env.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "ModelServing" && e.InvolvedObject.Name == "m" {
				seen[e.Reason] = true
			}
		}
		for _, r := range []string{"RoleCreating", "RoleRunning", "RoleDeleting"} {
			if !seen[r] {
				return fmt.Errorf("no %s event (seen %v)", r, seen)
			}
		}
		return nil
	})
}
