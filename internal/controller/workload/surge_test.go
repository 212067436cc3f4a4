package workload

import (
	"context"
	"fmt"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestResolveGroupBudget(t *testing.T) {
	i := func(v int) *intstr.IntOrString { x := intstr.FromInt(v); return &x }
	s := func(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
	cases := []struct {
		mu, ms         *intstr.IntOrString
		total          int
		wantMU, wantMS int
	}{
		{nil, nil, 4, 1, 0},
		{i(0), i(1), 4, 0, 1},
		{i(0), i(0), 4, 1, 0},         // both 0: the rollout must still move
		{s("10%"), nil, 4, 1, 0},      // 0.4 rounds down to 0, no surge: 1
		{s("10%"), s("10%"), 4, 0, 1}, // surge rounds up
		{i(2), s("50%"), 5, 2, 3},
	}
	for _, c := range cases {
		mu, ms := resolveGroupBudget(c.mu, c.ms, c.total)
		if mu != c.wantMU || ms != c.wantMS {
			t.Errorf("resolveGroupBudget(%v, %v, %d) = %d, %d; want %d, %d", c.mu, c.ms, c.total, mu, ms, c.wantMU, c.wantMS)
		}
	}
}

// simulateRollout drives a group rollout of ms from old to next with pods
// that become ready at once and vanish when deleted, checking after every
// step that the running groups stay at or above replicas − maxUnavailable
// and the surge groups within maxSurge. It returns the final pods.
func simulateRollout(t *testing.T, old, next *workloadv1alpha1.ModelServing, floor, maxSurge int) []*corev1.Pod {
	t.Helper()
	pods := fixture(t, old)
	for step := 0; step < 100; step++ {
		p := planFor(next, old, pods)
		p.scaleGroups()
		p.scaleRoles()
		p.rollGroups()
		if err := p.fill(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(p.delete) == 0 && len(p.create) == 0 {
			return pods
		}
		gone := map[string]bool{}
		for _, d := range p.delete {
			gone[d.Name] = true
		}
		var kept []*corev1.Pod
		for _, pod := range pods {
			if !gone[pod.Name] {
				kept = append(kept, pod)
			}
		}
		// Just after the deletions, before the new pods are ready.
		if n := runningGroups(kept); n < floor {
			t.Fatalf("step %d: %d groups running, floor %d; pods %v", step, n, floor, names(kept))
		}
		for _, c := range p.create {
			c.UID = types.UID(c.Name + fmt.Sprint(step))
			c.Status.Phase = corev1.PodRunning
			c.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			kept = append(kept, c)
		}
		if n := surgeGroups(kept); n > maxSurge {
			t.Fatalf("step %d: %d surge groups, maxSurge %d", step, n, maxSurge)
		}
		pods = kept
	}
	t.Fatal("the rollout did not settle in 100 steps")
	return nil
}

func runningGroups(pods []*corev1.Pod) int {
	groups := map[string]bool{}
	for _, p := range pods {
		g := p.Labels[workloadv1alpha1.GroupNameLabelKey]
		if _, seen := groups[g]; !seen {
			groups[g] = true
		}
		groups[g] = groups[g] && podReady(p)
	}
	n := 0
	for _, ok := range groups {
		if ok {
			n++
		}
	}
	return n
}

func surgeGroups(pods []*corev1.Pod) int {
	groups := map[string]bool{}
	for _, p := range pods {
		if p.Labels[SurgeLabelKey] == "true" {
			groups[p.Labels[workloadv1alpha1.GroupNameLabelKey]] = true
		}
	}
	return len(groups)
}

func groupImages(pods []*corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Labels[workloadv1alpha1.GroupNameLabelKey]] = p.Spec.Containers[0].Image
	}
	return out
}

func surgeSpec(replicas int32, mu, ms, partition intstr.IntOrString) (old, next *workloadv1alpha1.ModelServing) {
	base := wrappers.MakeModelServing("ns", "m").Replicas(replicas).GroupRollingUpdate(&mu, &partition).Role(wrappers.MakeRole("r").Workers(1).Obj())
	old = base.Obj()
	old.Spec.RolloutStrategy.RollingUpdateConfiguration.MaxSurge = &ms
	next = old.DeepCopy()
	next.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "new"
	next.Spec.Template.Roles[0].WorkerTemplate.Spec.Containers[0].Image = "new"
	return old, next
}

func TestSurgeFirstStep(t *testing.T) {
	old, next := surgeSpec(4, intstr.FromInt(0), intstr.FromInt(2), intstr.FromInt(0))
	p := planFor(next, old, fixture(t, old))
	p.scaleGroups()
	p.scaleRoles()
	p.rollGroups()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.delete) != 0 {
		t.Fatalf("deleted %v before any surge group ran", names(p.delete))
	}
	want := []string{"m-4-r-0-0", "m-4-r-0-1", "m-5-r-0-0", "m-5-r-0-1"}
	if got := names(p.create); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("created %v, want %v", got, want)
	}
	for _, c := range p.create {
		if c.Labels[SurgeLabelKey] != "true" || c.Labels[workloadv1alpha1.RevisionLabelKey] != p.revs.update || c.Spec.Containers[0].Image != "new" {
			t.Fatalf("surge pod %s: labels %v image %s", c.Name, c.Labels, c.Spec.Containers[0].Image)
		}
	}
	if st := p.status(); st.Replicas != 6 || st.UpdatedReplicas != 0 || st.AvailableReplicas != 4 {
		// The new groups have pods planned but not yet ready or stored.
		t.Logf("status %+v", st)
	}
}

func TestSurgeRollouts(t *testing.T) {
	cases := []struct {
		name              string
		replicas          int32
		mu, ms, partition intstr.IntOrString
		floor, surge      int
		oldGroups         int
	}{
		{"surge 1 unavailable 0", 4, intstr.FromInt(0), intstr.FromInt(1), intstr.FromInt(0), 4, 1, 0},
		{"surge 2 unavailable 1", 5, intstr.FromInt(1), intstr.FromInt(2), intstr.FromInt(0), 4, 2, 0},
		{"surge 25% of 3 rounds up", 3, intstr.FromInt(0), intstr.FromString("25%"), intstr.FromInt(0), 3, 1, 0},
		{"surge larger than the groups replaced", 4, intstr.FromInt(0), intstr.FromInt(4), intstr.FromInt(3), 4, 1, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			old, next := surgeSpec(c.replicas, c.mu, c.ms, c.partition)
			pods := simulateRollout(t, old, next, c.floor, c.surge)
			imgs := groupImages(pods)
			var groups []string
			for g := range imgs {
				groups = append(groups, g)
			}
			sort.Strings(groups)
			if len(groups) != int(c.replicas) {
				t.Fatalf("groups %v after the rollout, want %d", groups, c.replicas)
			}
			for i := 0; i < int(c.replicas); i++ {
				want := "new"
				if i < c.oldGroups {
					want = wrappers.DefaultImage
				}
				if got := imgs[GroupName("m", i)]; got != want {
					t.Errorf("group %d image %q, want %q", i, got, want)
				}
			}
			if n := surgeGroups(pods); n != 0 {
				t.Errorf("%d surge groups left", n)
			}
		})
	}
}

// A surge group is not counted by scale-down and carries its label onto
// rebuilt pods.
func TestSurgeGroupNotScaledDown(t *testing.T) {
	old, next := surgeSpec(2, intstr.FromInt(0), intstr.FromInt(1), intstr.FromInt(0))
	pods := fixture(t, old)
	p := planFor(next, old, pods)
	p.scaleGroups()
	p.scaleRoles()
	p.rollGroups()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	surge := p.create[0]
	surge.UID = "s"
	surge.CreationTimestamp = metav1.Now()
	p = planFor(next, old, append(pods, surge)) // its worker is still missing
	p.scaleGroups()
	p.scaleRoles()
	p.rollGroups()
	if err := p.fill(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(p.delete) != 0 || len(p.create) != 1 || p.create[0].Name != "m-2-r-0-1" || p.create[0].Labels[SurgeLabelKey] != "true" {
		t.Fatalf("deleted %v, created %v", names(p.delete), names(p.create))
	}
}
