package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func uidsByName(pods []corev1.Pod) map[string]types.UID {
	out := map[string]types.UID{}
	for _, p := range pods {
		out[p.Name] = p.UID
	}
	return out
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func deletePod(t *testing.T, ns, name string) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), getPod(t, ns, name)); err != nil {
		t.Fatal(err)
	}
}

// replaced waits until every named pod exists with a new UID and is ready.
func replaced(t *testing.T, ns string, before map[string]types.UID, names ...string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		now := uidsByName(listPods(t, ns, nil))
		for _, n := range names {
			if now[n] == "" || now[n] == before[n] {
				return fmt.Errorf("pod %s not replaced yet", n)
			}
		}
		return nil
	})
}

// kept checks that the named pods keep their UIDs.
func kept(t *testing.T, ns string, before map[string]types.UID, names ...string) {
	t.Helper()
	now := uidsByName(listPods(t, ns, nil))
	for _, n := range names {
		if now[n] != before[n] {
			t.Errorf("pod %s was replaced (uid %s -> %s)", n, before[n], now[n])
		}
	}
}

func twoRoleMS(ns string, policy workloadv1alpha1.RecoveryPolicy) *workloadv1alpha1.ModelServing {
	return wrappers.MakeModelServing(ns, "m").Replicas(2).RecoveryPolicy(policy).
		Role(wrappers.MakeRole("p").Workers(1).Obj()).
		Role(wrappers.MakeRole("d").Obj()).Obj()
}

// TestRecoveryOnPodDelete deletes one pod under each recovery policy and
// checks which pods are rebuilt and which are left alone.
func TestRecoveryOnPodDelete(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy         workloadv1alpha1.RecoveryPolicy
		delete         string
		replaced, kept []string
	}{
		// The role instance is rebuilt: the entry with its worker.
		{workloadv1alpha1.RoleRecreate, "m-0-p-0-1",
			[]string{"m-0-p-0-0", "m-0-p-0-1"}, []string{"m-0-d-0-0", "m-1-p-0-0", "m-1-p-0-1", "m-1-d-0-0"}},
		// The whole serving group is rebuilt.
		{workloadv1alpha1.ServingGroupRecreate, "m-1-d-0-0",
			[]string{"m-1-p-0-0", "m-1-p-0-1", "m-1-d-0-0"}, []string{"m-0-p-0-0", "m-0-p-0-1", "m-0-d-0-0"}},
		// Only the deleted pod comes back.
		{workloadv1alpha1.NoneRestartPolicy, "m-0-p-0-1",
			[]string{"m-0-p-0-1"}, []string{"m-0-p-0-0", "m-0-d-0-0", "m-1-p-0-0", "m-1-p-0-1", "m-1-d-0-0"}},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			startManager(t, ns)
			startKubelet(t, ns, 0)
			create(t, twoRoleMS(ns, tc.policy))
			waitAvailable(t, ns, "m", 2)
			before := uidsByName(listPods(t, ns, nil))

			deletePod(t, ns, tc.delete)
			replaced(t, ns, before, tc.replaced...)
			waitAvailable(t, ns, "m", 2)
			kept(t, ns, before, tc.kept...)
		})
	}
}

// errPod makes the kubelet report pod name as restarted and not ready since
// `since` ago, or failed.
func errPod(t *testing.T, k *kubelet, ns, name string, failed bool, since time.Duration) {
	t.Helper()
	k.hold(name)
	p := getPod(t, ns, name)
	p.Status.Phase = corev1.PodRunning
	if failed {
		p.Status.Phase = corev1.PodFailed
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(time.Now().Add(-since))}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "engine", Image: wrappers.DefaultImage, RestartCount: 1}}
	if err := env.Client.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryErroredPods(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		policy   workloadv1alpha1.RecoveryPolicy
		failed   bool
		pod      string
		replaced []string
		kept     []string
	}{
		{"role-recreate restarting entry", workloadv1alpha1.RoleRecreate, false, "m-0-p-0-0", []string{"m-0-p-0-0", "m-0-p-0-1"}, []string{"m-0-d-0-0", "m-1-p-0-0"}},
		{"group-recreate failed decode", workloadv1alpha1.ServingGroupRecreate, true, "m-1-d-0-0", []string{"m-1-p-0-0", "m-1-p-0-1", "m-1-d-0-0"}, []string{"m-0-p-0-0", "m-0-d-0-0"}},
		{"none failed worker", workloadv1alpha1.NoneRestartPolicy, true, "m-0-p-0-1", []string{"m-0-p-0-1"}, []string{"m-0-p-0-0", "m-0-d-0-0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			startManager(t, ns)
			k := startKubelet(t, ns, 0)
			create(t, twoRoleMS(ns, c.policy))
			waitAvailable(t, ns, "m", 2)
			before := uidsByName(listPods(t, ns, nil))
			errPod(t, k, ns, c.pod, c.failed, time.Minute)
			replaced(t, ns, before, c.replaced...)
			kept(t, ns, before, c.kept...)
			k.release(c.pod)
			waitAvailable(t, ns, "m", 2)
		})
	}
}

func TestRecoveryNoneLeavesRestartingPod(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	k := startKubelet(t, ns, 0)
	create(t, twoRoleMS(ns, workloadv1alpha1.NoneRestartPolicy))
	waitAvailable(t, ns, "m", 2)
	before := uidsByName(listPods(t, ns, nil))
	errPod(t, k, ns, "m-0-p-0-0", false, time.Hour)
	consistently(t, 2*time.Second, func() error {
		if now := uidsByName(listPods(t, ns, nil)); now["m-0-p-0-0"] != before["m-0-p-0-0"] {
			return fmt.Errorf("restarting pod replaced under recoveryPolicy None")
		}
		return nil
	})
}

func TestRecoveryWaitsForGracePeriod(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	k := startKubelet(t, ns, 0)
	ms := twoRoleMS(ns, workloadv1alpha1.RoleRecreate)
	ms.Spec.Template.RestartGracePeriodSeconds = new(int64)
	*ms.Spec.Template.RestartGracePeriodSeconds = 3
	create(t, ms)
	waitAvailable(t, ns, "m", 2)
	before := uidsByName(listPods(t, ns, nil))
	start := time.Now()
	errPod(t, k, ns, "m-0-d-0-0", false, 0)
	consistently(t, 1500*time.Millisecond, func() error {
		if now := uidsByName(listPods(t, ns, nil)); now["m-0-d-0-0"] != before["m-0-d-0-0"] {
			return fmt.Errorf("pod replaced inside its grace period")
		}
		return nil
	})
	replaced(t, ns, before, "m-0-d-0-0")
	k.release("m-0-d-0-0")
	if waited := time.Since(start); waited < 2*time.Second {
		t.Errorf("replaced after %v, before the 3s grace period", waited)
	}
}

func TestHeadlessServiceRecreated(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, twoRoleMS(ns, workloadv1alpha1.RoleRecreate))
	waitAvailable(t, ns, "m", 2)
	var svc corev1.Service
	ctx := context.Background()
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "m-0-p-0-0"}, &svc); err != nil {
		t.Fatal(err)
	}
	before := uidsByName(listPods(t, ns, nil))
	if err := env.Client.Delete(ctx, &svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		var again corev1.Service
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "m-0-p-0-0"}, &again); err != nil {
			return err
		}
		if again.UID == svc.UID {
			return fmt.Errorf("service not recreated")
		}
		return nil
	})
	waitAvailable(t, ns, "m", 2)
	kept(t, ns, before, podNames(listPods(t, ns, nil))...)
}
