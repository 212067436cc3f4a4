package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/workload"
	"github.com/kthena/kthena/test/wrappers"
)

// surgeObservation is what a sampler saw over a rollout.
type surgeObservation struct {
	mu          sync.Mutex
	minRunning  int
	maxSurge    int
	maxReplicas int32
	samples     int
}

// observeSurge samples the pods and status of ModelServing m in ns every
// 20 ms until stop: the fewest groups with all podsPerGroup pods ready, the
// most surge groups, and the highest status.replicas.
func observeSurge(t *testing.T, ns string, podsPerGroup int) (stop func() *surgeObservation) {
	o := &surgeObservation{minRunning: 1 << 30}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var list corev1.PodList
			var ms workloadv1alpha1.ModelServing
			if env.Client.List(context.Background(), &list, client.InNamespace(ns)) == nil &&
				env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "m"}, &ms) == nil {
				ready, surge := map[string]int{}, map[string]bool{}
				for i := range list.Items {
					p := &list.Items[i]
					g := p.Labels[workloadv1alpha1.GroupNameLabelKey]
					if podIsReady(p) && p.DeletionTimestamp == nil {
						ready[g]++
					}
					if p.Labels[workload.SurgeLabelKey] == "true" {
						surge[g] = true
					}
				}
				running := 0
				for _, n := range ready {
					if n == podsPerGroup {
						running++
					}
				}
				o.mu.Lock()
				o.samples++
				o.minRunning = min(o.minRunning, running)
				o.maxSurge = max(o.maxSurge, len(surge))
				o.maxReplicas = max(o.maxReplicas, ms.Status.Replicas)
				o.mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() *surgeObservation {
		once.Do(func() { close(done); wg.Wait() })
		o.mu.Lock()
		defer o.mu.Unlock()
		return o
	}
	t.Cleanup(func() { stop() })
	return stop
}

func surgeServing(ns string, replicas int32, maxUnavailable, maxSurge, partition *intstr.IntOrString) *workloadv1alpha1.ModelServing {
	ms := wrappers.MakeModelServing(ns, "m").Replicas(replicas).GroupRollingUpdate(maxUnavailable, partition).
		Role(wrappers.MakeRole("r").Workers(1).Obj()).Obj()
	ms.Spec.RolloutStrategy.RollingUpdateConfiguration.MaxSurge = maxSurge
	return ms
}

func wantGroupImages(t *testing.T, ns string, replicas int, images map[int]string) {
	t.Helper()
	pods := listPods(t, ns, nil)
	got := map[string]string{}
	for _, p := range pods {
		got[p.Name] = p.Spec.Containers[0].Image
		if p.Labels[workload.SurgeLabelKey] != "" {
			t.Errorf("pod %s still carries the surge label", p.Name)
		}
	}
	for i := 0; i < replicas; i++ {
		for k := 0; k < 2; k++ {
			name := workload.PodName("m", i, "r", 0, k)
			if got[name] != images[i] {
				t.Errorf("%s image %q, want %q; pods: %s", name, got[name], images[i], podSummary(pods))
			}
		}
	}
}

// With maxUnavailable 0 and maxSurge 1, a rollout adds a group on the new
// revision before any old one goes, so all replicas keep running.
func TestSurgeRolloutNeverDropsBelowReplicas(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 300*time.Millisecond)
	zero, one := intstr.FromInt32(0), intstr.FromInt32(1)
	create(t, surgeServing(ns, 3, &zero, &one, nil))
	waitAvailable(t, ns, "m", 3)
	stop := observeSurge(t, ns, 2)
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	waitRolledOut(t, ns, "m", 3, 6)
	o := stop()
	if o.minRunning < 3 {
		t.Fatalf("only %d groups were running at one point, want at least 3 (replicas − maxUnavailable)", o.minRunning)
	}
	if o.maxSurge != 1 {
		t.Fatalf("saw at most %d surge groups, want exactly 1 (maxSurge)", o.maxSurge)
	}
	if o.maxReplicas > 4 {
		t.Fatalf("status.replicas reached %d, want at most replicas + maxSurge = 4", o.maxReplicas)
	}
	t.Logf("%d samples, status.replicas up to %d", o.samples, o.maxReplicas)
	wantGroupImages(t, ns, 3, map[int]string{0: "nginx:alpine", 1: "nginx:alpine", 2: "nginx:alpine"})
}

// maxSurge as a percentage of replicas rounds up: 30% of 4 is 2 groups;
// maxUnavailable 1 lets an old group go at the same time.
func TestSurgeRolloutPercentage(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 300*time.Millisecond)
	one, pct := intstr.FromInt32(1), intstr.FromString("30%")
	create(t, surgeServing(ns, 4, &one, &pct, nil))
	waitAvailable(t, ns, "m", 4)
	stop := observeSurge(t, ns, 2)
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	waitRolledOut(t, ns, "m", 4, 8)
	o := stop()
	if o.minRunning < 3 {
		t.Fatalf("only %d groups were running at one point, want at least 3", o.minRunning)
	}
	if o.maxSurge != 2 {
		t.Fatalf("saw at most %d surge groups, want 2 (30%% of 4 rounded up)", o.maxSurge)
	}
	wantGroupImages(t, ns, 4, map[int]string{0: "nginx:alpine", 1: "nginx:alpine", 2: "nginx:alpine", 3: "nginx:alpine"})
}

// Groups below the partition are never replaced, and surge counts only the
// groups being replaced: with 2 of 4 groups protected, maxSurge 3 adds at
// most 2 groups.
func TestSurgeRolloutPartition(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 300*time.Millisecond)
	zero, three, two := intstr.FromInt32(0), intstr.FromInt32(3), intstr.FromInt32(2)
	create(t, surgeServing(ns, 4, &zero, &three, &two))
	waitAvailable(t, ns, "m", 4)
	oldRev := getMS(t, ns, "m").Status.UpdateRevision
	stop := observeSurge(t, ns, 2)
	updateMS(t, ns, "m", setImage("nginx:alpine"))
	eventually(t, 60*time.Second, func() error {
		ms := getMS(t, ns, "m")
		st := ms.Status
		if st.ObservedGeneration != ms.Generation || st.CurrentRevision != oldRev || st.UpdatedReplicas != 2 || st.CurrentReplicas != 2 || st.AvailableReplicas != 4 || st.Replicas != 4 {
			return fmt.Errorf("status %+v", st)
		}
		if n := len(listPods(t, ns, nil)); n != 8 {
			return fmt.Errorf("%d pods, want 8", n)
		}
		return nil
	})
	o := stop()
	if o.minRunning < 4 {
		t.Fatalf("only %d groups were running at one point, want 4", o.minRunning)
	}
	if o.maxSurge == 0 || o.maxSurge > 2 {
		t.Fatalf("saw at most %d surge groups, want 1 or 2 (only 2 groups are replaced)", o.maxSurge)
	}
	old := wrappers.DefaultImage
	wantGroupImages(t, ns, 4, map[int]string{0: old, 1: old, 2: "nginx:alpine", 3: "nginx:alpine"})

	// Lowering the partition finishes the rollout, still with surge.
	stop = observeSurge(t, ns, 2)
	updateMS(t, ns, "m", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.RolloutStrategy.RollingUpdateConfiguration.Partition = nil
	})
	waitRolledOut(t, ns, "m", 4, 8)
	if o := stop(); o.minRunning < 4 {
		t.Fatalf("only %d groups were running at one point, want 4", o.minRunning)
	}
	wantGroupImages(t, ns, 4, map[int]string{0: "nginx:alpine", 1: "nginx:alpine", 2: "nginx:alpine", 3: "nginx:alpine"})
}
