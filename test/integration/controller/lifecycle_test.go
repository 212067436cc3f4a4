package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func envOf(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func wantPods(t *testing.T, ns string, sel map[string]string, want ...string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		got := podNames(listPods(t, ns, sel))
		if !slices.Equal(got, sortStrings(want)) {
			return fmt.Errorf("pods = %v, want %v", got, sortStrings(want))
		}
		return nil
	})
}

func conditionTrue(ms *workloadv1alpha1.ModelServing, c workloadv1alpha1.ModelServingConditionType) bool {
	return meta.IsStatusConditionTrue(ms.Status.Conditions, string(c))
}

func waitAvailable(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		ms := getMS(t, ns, name)
		st := ms.Status
		if st.ObservedGeneration != ms.Generation || st.AvailableReplicas != replicas || st.Replicas != replicas ||
			st.UpdatedReplicas != replicas || !conditionTrue(ms, workloadv1alpha1.ModelServingAvailable) {
			return fmt.Errorf("status not available: %+v", st)
		}
		return nil
	})
}

func TestLifecycle(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	ms := wrappers.MakeModelServing(ns, "llm").Replicas(2).
		Role(wrappers.MakeRole("prefill").Workers(1).Env("GROUP_SIZE", "stale").EntryLabels(map[string]string{"team": "a"}).Obj()).
		Role(wrappers.MakeRole("decode").Obj()).Obj()
	create(t, ms)

	wantPods(t, ns, nil,
		"llm-0-prefill-0-0", "llm-0-prefill-0-1", "llm-0-decode-0-0",
		"llm-1-prefill-0-0", "llm-1-prefill-0-1", "llm-1-decode-0-0")
	waitAvailable(t, ns, "llm", 2)
	ms = getMS(t, ns, "llm")

	// Labels, env, owner and scheduler of a worker and an entry pod.
	var entry, worker corev1.Pod
	ctx := context.Background()
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "llm-1-prefill-0-0"}, &entry); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "llm-1-prefill-0-1"}, &worker); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		workloadv1alpha1.ModelServingNameLabelKey: "llm",
		workloadv1alpha1.GroupNameLabelKey:        "llm-1",
		workloadv1alpha1.RoleLabelKey:             "prefill",
		workloadv1alpha1.RoleIDLabelKey:           "prefill-0",
		workloadv1alpha1.EntryLabelKey:            "true",
		workloadv1alpha1.RevisionLabelKey:         ms.Status.UpdateRevision,
		"team":                                    "a",
	} {
		if entry.Labels[k] != v {
			t.Errorf("entry label %s = %q, want %q", k, entry.Labels[k], v)
		}
	}
	if _, ok := worker.Labels[workloadv1alpha1.EntryLabelKey]; ok {
		t.Error("worker has the entry label")
	}
	if worker.Labels[workloadv1alpha1.RoleTemplateHashLabelKey] == "" {
		t.Error("worker has no role-template-hash")
	}
	if got := envOf(entry.Spec.Containers[0], workloadv1alpha1.GroupSizeEnv); got != "2" {
		t.Errorf("GROUP_SIZE = %q (a template value of the same name must be replaced)", got)
	}
	if got := envOf(worker.Spec.Containers[0], workloadv1alpha1.WorkerIndexEnv); got != "1" {
		t.Errorf("worker WORKER_INDEX = %q", got)
	}
	if got := envOf(worker.Spec.Containers[0], workloadv1alpha1.EntryAddressEnv); got != "llm-1-prefill-0-0."+ns {
		t.Errorf("ENTRY_ADDRESS = %q", got)
	}
	if ref := metav1.GetControllerOf(&worker); ref == nil || ref.UID != ms.UID || ref.Kind != "ModelServing" {
		t.Errorf("owner = %+v", ref)
	}
	if entry.Spec.SchedulerName != "default-scheduler" {
		t.Errorf("schedulerName = %q", entry.Spec.SchedulerName)
	}

	// One headless Service per role replica with workers.
	eventually(t, 10*time.Second, func() error {
		var svcs corev1.ServiceList
		if err := env.Client.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
			return err
		}
		var names []string
		for _, s := range svcs.Items {
			if s.Spec.ClusterIP != corev1.ClusterIPNone || !s.Spec.PublishNotReadyAddresses || s.Spec.Selector[workloadv1alpha1.EntryLabelKey] != "true" {
				return fmt.Errorf("service %s is not headless for the entry pod: %+v", s.Name, s.Spec)
			}
			names = append(names, s.Name)
		}
		if want := []string{"llm-0-prefill-0-0", "llm-1-prefill-0-0"}; !slices.Equal(sortStrings(names), want) {
			return fmt.Errorf("services = %v, want %v", names, want)
		}
		return nil
	})

	// Status: selector for the scale subresource counts one pod per group.
	if got := len(listPodsBySelector(t, ns, ms.Status.LabelSelector)); got != 2 {
		t.Errorf("labelSelector %q selects %d pods, want 2", ms.Status.LabelSelector, got)
	}
	out, err := env.Kubectl(ctx, "get", "modelservings", "-n", ns)
	if err != nil || !strings.Contains(out, "AVAILABLE") || !strings.Contains(out, "llm") {
		t.Errorf("kubectl get modelservings: %v\n%s", err, out)
	}

	// Change the image: every pod moves to the new revision.
	oldRev := ms.Status.UpdateRevision
	updateMS(t, ns, "llm", func(ms *workloadv1alpha1.ModelServing) {
		ms.Spec.Template.Roles[1].EntryTemplate.Spec.Containers[0].Image = "nginx:alpine"
	})
	eventually(t, 60*time.Second, func() error {
		ms := getMS(t, ns, "llm")
		if ms.Status.UpdateRevision == oldRev || ms.Status.CurrentRevision != ms.Status.UpdateRevision || ms.Status.AvailableReplicas != 2 {
			return fmt.Errorf("rollout not done: %+v", ms.Status)
		}
		for _, p := range listPods(t, ns, nil) {
			if p.Labels[workloadv1alpha1.RevisionLabelKey] != ms.Status.UpdateRevision {
				return fmt.Errorf("pod %s at revision %s", p.Name, p.Labels[workloadv1alpha1.RevisionLabelKey])
			}
		}
		return nil
	})
	if n := len(listPods(t, ns, nil)); n != 6 {
		t.Errorf("%d pods after the rollout, want 6", n)
	}

	// Delete with foreground propagation: with no garbage collector here the
	// controller itself deletes what it owns while the ModelServing waits.
	if err := env.Client.Delete(ctx, getMS(t, ns, "llm"), client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var svcs corev1.ServiceList
		if err := env.Client.List(ctx, &svcs, client.InNamespace(ns)); err != nil {
			return err
		}
		if n, m := len(listPods(t, ns, nil)), len(svcs.Items); n+m > 0 {
			return fmt.Errorf("%d pods and %d services left", n, m)
		}
		return nil
	})
	// Play the garbage collector: drop the foreground finalizer.
	updateMS(t, ns, "llm", func(ms *workloadv1alpha1.ModelServing) { ms.Finalizers = nil })
	eventually(t, 10*time.Second, func() error {
		err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "llm"}, &workloadv1alpha1.ModelServing{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("ModelServing still there: %v", err)
	})
}

func listPodsBySelector(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	sel, err := metav1.ParseToLabelSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: s}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}
