package workload

import (
	"context"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

// fixture builds the pods of ms at its current spec, all ready.
func fixture(t *testing.T, ms *workloadv1alpha1.ModelServing) []*corev1.Pod {
	t.Helper()
	tmpl := TemplateOf(ms)
	revs := newRevisionSet(&tmpl, nil)
	revs.current = revs.update
	p := newPlan(ms, revs, newModel(), nil, false, time.Now())
	p.scaleGroups()
	p.scaleRoles()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pod := range p.create {
		pod.UID = types.UID(pod.Name)
		pod.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
		pod.Status.Phase = corev1.PodRunning
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p.create
}

func planFor(ms *workloadv1alpha1.ModelServing, current *workloadv1alpha1.ModelServing, pods []*corev1.Pod) *plan {
	tmpl := TemplateOf(ms)
	old := TemplateOf(current)
	cr, _ := newControllerRevision(current, &old, old.Hash(), 1)
	revs := newRevisionSet(&tmpl, nil)
	if cr != nil {
		revs = newRevisionSet(&tmpl, []appsv1.ControllerRevision{*cr})
	}
	revs.current = old.Hash()
	m, _ := buildModel(ms.Name, pods)
	return newPlan(ms, revs, m, nil, false, time.Now())
}

func names(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

func TestRollGroupsBudget(t *testing.T) {
	two := intstr.FromInt32(2)
	base := wrappers.MakeModelServing("ns", "m").Replicas(4).GroupRollingUpdate(&two, nil).Role(wrappers.MakeRole("r").Obj())
	old := base.Obj()
	pods := fixture(t, old)
	next := base.Obj()
	next.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "new"

	p := planFor(next, old, pods)
	p.rollGroups()
	if got := names(p.delete); len(got) != 2 || got[0] != "m-2-r-0-0" || got[1] != "m-3-r-0-0" {
		t.Fatalf("deleted %v, want the two highest groups", got)
	}

	// One group already down: only one more may go.
	pods[0].Status.Conditions[0].Status = corev1.ConditionFalse // m-0 not ready, outdated: replaced for free
	p = planFor(next, old, pods)
	p.rollGroups()
	if got := names(p.delete); len(got) != 2 || got[0] != "m-0-r-0-0" || got[1] != "m-3-r-0-0" {
		t.Fatalf("deleted %v, want m-0 (not ready) and m-3", got)
	}
}

func TestRollGroupsPartition(t *testing.T) {
	four, two := intstr.FromInt32(4), intstr.FromString("50%")
	base := wrappers.MakeModelServing("ns", "m").Replicas(4).GroupRollingUpdate(&four, &two).Role(wrappers.MakeRole("r").Obj())
	old := base.Obj()
	pods := fixture(t, old)
	next := base.Obj()
	next.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "new"
	p := planFor(next, old, pods)
	p.rollGroups()
	if got := names(p.delete); len(got) != 2 || got[0] != "m-2-r-0-0" || got[1] != "m-3-r-0-0" {
		t.Fatalf("deleted %v, want only the groups at or above the partition", got)
	}
	// A protected group rebuilt after losing its pod uses the old template.
	var rest []*corev1.Pod
	for _, pod := range pods {
		if pod.Name != "m-0-r-0-0" {
			rest = append(rest, pod)
		}
	}
	p = planFor(next, old, rest)
	p.scaleGroups()
	p.scaleRoles()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.create) != 1 || p.create[0].Spec.Containers[0].Image != wrappers.DefaultImage {
		t.Fatalf("rebuilt %v with %v", names(p.create), p.create)
	}
}

func TestRecoverPolicies(t *testing.T) {
	base := wrappers.MakeModelServing("ns", "m").Replicas(2).Role(wrappers.MakeRole("p").Workers(1).Obj()).Role(wrappers.MakeRole("d").Obj())
	cases := []struct {
		policy workloadv1alpha1.RecoveryPolicy
		failed bool
		want   []string
	}{
		{workloadv1alpha1.RoleRecreate, false, []string{"m-0-p-0-0", "m-0-p-0-1"}},
		{workloadv1alpha1.ServingGroupRecreate, false, []string{"m-0-d-0-0", "m-0-p-0-0", "m-0-p-0-1"}},
		{workloadv1alpha1.NoneRestartPolicy, false, nil},
		{workloadv1alpha1.NoneRestartPolicy, true, []string{"m-0-p-0-1"}},
	}
	for _, c := range cases {
		ms := base.Obj()
		ms.Spec.RecoveryPolicy = c.policy
		pods := fixture(t, ms)
		for _, pod := range pods {
			if pod.Name == "m-0-p-0-1" {
				pod.Status.Conditions[0].Status = corev1.ConditionFalse
				pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "engine", RestartCount: 2}}
				if c.failed {
					pod.Status.Phase = corev1.PodFailed
				}
			}
		}
		p := planFor(ms, ms, pods)
		p.recover(nil)
		got := names(p.delete)
		if len(got) != len(c.want) || len(got) > 0 && got[len(got)-1] != c.want[len(c.want)-1] {
			t.Errorf("%s failed=%v: deleted %v, want %v", c.policy, c.failed, got, c.want)
		}
	}
}

func TestStatusConditionsExclusive(t *testing.T) {
	ms := wrappers.MakeModelServing("ns", "m").Replicas(2).Role(wrappers.MakeRole("r").Obj()).Obj()
	pods := fixture(t, ms)
	st := planFor(ms, ms, pods).status()
	if st.AvailableReplicas != 2 || st.UpdatedReplicas != 2 || st.CurrentRevision != st.UpdateRevision {
		t.Fatalf("status %+v", st)
	}
	trues := 0
	for _, c := range st.Conditions {
		if c.Status == metav1.ConditionTrue {
			trues++
			if c.Type != string(workloadv1alpha1.ModelServingAvailable) {
				t.Errorf("%s true", c.Type)
			}
		}
	}
	if trues != 1 {
		t.Errorf("%d conditions true", trues)
	}
	if st.LabelSelector == "" {
		t.Error("no labelSelector")
	}
}

func TestFinishInterruptedDeletions(t *testing.T) {
	ms := wrappers.MakeModelServing("ns", "m").Replicas(1).Role(wrappers.MakeRole("r").Replicas(2).Obj()).Obj()
	pods := fixture(t, ms)
	zero := int64(0)
	old := metav1.NewTime(time.Now().Add(-time.Minute))
	recent := metav1.NewTime(time.Now())
	pods[0].DeletionTimestamp, pods[0].DeletionGracePeriodSeconds = &old, &zero
	pods[1].DeletionTimestamp, pods[1].DeletionGracePeriodSeconds = &recent, &zero
	withFinalizer := fixture(t, ms)[0]
	withFinalizer.Name, withFinalizer.Finalizers = "m-0-r-9-0", []string{"example.com/hold"}
	withFinalizer.Labels[workloadv1alpha1.RoleIDLabelKey] = "r-9"
	withFinalizer.DeletionTimestamp, withFinalizer.DeletionGracePeriodSeconds = &old, &zero
	p := planFor(ms, ms, append(pods, withFinalizer))
	p.finishDeletions()
	if got := names(p.delete); len(got) != 1 || got[0] != pods[0].Name {
		t.Fatalf("deleted %v, want only the old half-deleted pod %s", got, pods[0].Name)
	}
	if p.requeue <= 0 || p.requeue > halfDeletedAfter {
		t.Fatalf("requeue %v", p.requeue)
	}
	// Neither is rebuilt while it is still stored.
	p.scaleGroups()
	p.scaleRoles()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.create) != 0 {
		t.Fatalf("created %v while the old pods are still stored", names(p.create))
	}
}
