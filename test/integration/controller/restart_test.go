package controller

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

// TestControllerRestartMidRollout stops the controller while a rollout is
// half done and starts a fresh one (empty memory, new caches): the rollout
// completes with exactly the desired pods, none duplicated or orphaned,
// within maxUnavailable throughout.
func TestControllerRestartMidRollout(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	first := startManager(t, ns)
	startKubelet(t, ns, 500*time.Millisecond)
	one := intstr.FromInt32(1)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(4).GroupRollingUpdate(&one, nil).
		Role(wrappers.MakeRole("p").Workers(1).Obj()).
		Role(wrappers.MakeRole("d").Obj()).Obj())
	waitAvailable(t, ns, "m", 4)
	groups := []string{"m-0", "m-1", "m-2", "m-3"}
	stop := watchMax(t, func() int { return unavailableGroups(listPods(t, ns, nil), groups, 3) })

	updateMS(t, ns, "m", setImage("nginx:alpine"))
	eventually(t, 30*time.Second, func() error {
		if st := getMS(t, ns, "m").Status; st.UpdatedReplicas < 1 || st.UpdatedReplicas > 2 {
			return fmt.Errorf("updated = %d, waiting for a half-done rollout", st.UpdatedReplicas)
		}
		return nil
	})
	first.stop(t)
	second := startManager(t, ns)
	t.Cleanup(func() {
		if t.Failed() {
			select {
			case <-second.done:
				t.Logf("second manager exited: %v", second.err)
			default:
				t.Logf("second manager running, %d writes", second.writes.Load())
			}
		}
	})

	ms := waitRolledOut(t, ns, "m", 4, 12)
	want := []string{}
	for _, g := range []int{0, 1, 2, 3} {
		want = append(want, fmt.Sprintf("m-%d-p-0-0", g), fmt.Sprintf("m-%d-p-0-1", g), fmt.Sprintf("m-%d-d-0-0", g))
	}
	if got := podNames(listPods(t, ns, nil)); joinNames(got) != joinNames(sortStrings(want)) {
		t.Fatalf("pods %v, want %v", got, want)
	}
	for _, p := range listPods(t, ns, nil) {
		if p.Labels[workloadv1alpha1.RevisionLabelKey] != ms.Status.UpdateRevision || len(p.OwnerReferences) != 1 || p.OwnerReferences[0].UID != ms.UID {
			t.Errorf("pod %s revision %s owners %v", p.Name, p.Labels[workloadv1alpha1.RevisionLabelKey], p.OwnerReferences)
		}
	}
	if got := stop(); got > 1 {
		t.Errorf("%d groups unavailable at once across the restart, maxUnavailable is 1", got)
	}
	if got := serviceNames(t, ns); len(got) != 4 {
		t.Errorf("services %v, want one per group's p replica", got)
	}
}

// TestSteadyStateCostsNoWrites checks that a settled ModelServing causes no
// API writes, even as resyncs and unrelated pod updates trigger reconciles.
func TestSteadyStateCostsNoWrites(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	m := startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(2).Role(wrappers.MakeRole("p").Workers(1).Obj()).Obj())
	waitAvailable(t, ns, "m", 2)
	// Let the last status write land, then touch a pod (a label change the
	// controller does not care about) and watch the write counter.
	eventually(t, 10*time.Second, func() error {
		before := m.writes.Load()
		time.Sleep(500 * time.Millisecond)
		if after := m.writes.Load(); after != before {
			return fmt.Errorf("still writing: %d -> %d", before, after)
		}
		return nil
	})
	before := m.writes.Load()
	markCost(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-0"}, 3)
	consistently(t, 2*time.Second, func() error {
		if after := m.writes.Load(); after != before {
			return fmt.Errorf("%d writes in steady state", after-before)
		}
		return nil
	})
}
