package workload

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestBuildPod(t *testing.T) {
	ms := wrappers.MakeModelServing("ns", "m").SchedulerName("volcano").
		Role(wrappers.MakeRole("p").Workers(2).Env(workloadv1alpha1.WorkerIndexEnv, "9").EntryLabels(map[string]string{workloadv1alpha1.RoleLabelKey: "override", "x": "y"}).Obj()).Obj()
	ms.UID = "uid-1"
	role := &ms.Spec.Template.Roles[0]
	role.WorkerTemplate.Spec.InitContainers = []corev1.Container{{Name: "init"}}
	for _, c := range []struct {
		worker int
		gang   bool
	}{{0, false}, {2, true}} {
		pod, err := buildPod(context.Background(), podSpecInput{ms: ms, group: 3, role: role, roleIdx: 1, worker: c.worker, revision: "rev", roleHash: "rh", gang: c.gang})
		if err != nil {
			t.Fatal(err)
		}
		if want := PodName("m", 3, "p", 1, c.worker); pod.Name != want {
			t.Errorf("name %s, want %s", pod.Name, want)
		}
		if pod.Spec.SchedulerName != "volcano" || pod.OwnerReferences[0].UID != "uid-1" || !*pod.OwnerReferences[0].Controller {
			t.Errorf("scheduler/owner: %+v", pod)
		}
		envs := pod.Spec.Containers[0].Env
		if c.worker > 0 {
			envs = pod.Spec.InitContainers[0].Env
		}
		wantEnv := map[string]string{workloadv1alpha1.GroupSizeEnv: "3", workloadv1alpha1.EntryAddressEnv: "m-3-p-1-0.ns", workloadv1alpha1.WorkerIndexEnv: map[int]string{0: "0", 2: "2"}[c.worker]}
		count := map[string]int{}
		for _, e := range envs {
			count[e.Name]++
			if w, ok := wantEnv[e.Name]; ok && e.Value != w {
				t.Errorf("worker %d env %s = %s, want %s", c.worker, e.Name, e.Value, w)
			}
		}
		for n := range wantEnv {
			if count[n] != 1 {
				t.Errorf("worker %d env %s appears %d times", c.worker, n, count[n])
			}
		}
		_, isEntry := pod.Labels[workloadv1alpha1.EntryLabelKey]
		if isEntry != (c.worker == 0) {
			t.Errorf("worker %d entry label %v", c.worker, isEntry)
		}
		if c.worker == 0 && (pod.Labels["x"] != "y" || pod.Labels[workloadv1alpha1.RoleLabelKey] != "p") {
			t.Errorf("template labels not merged, or allowed to override system labels: %v", pod.Labels)
		}
		_, hasGang := pod.Annotations["scheduling.k8s.io/group-name"]
		if hasGang != c.gang || c.gang && pod.Annotations["volcano.sh/task-spec"] != "p-1" {
			t.Errorf("gang annotations %v", pod.Annotations)
		}
	}
}
