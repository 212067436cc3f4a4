package workload

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestRevisionHash(t *testing.T) {
	base := func() *workloadv1alpha1.ModelServing {
		return wrappers.MakeModelServing("ns", "m").Replicas(2).
			Role(wrappers.MakeRole("p").Replicas(2).Workers(1).Obj()).
			Role(wrappers.MakeRole("d").Obj()).Obj()
	}
	ref := TemplateOf(base())
	refHash := ref.Hash()
	if refHash == "" || refHash != TemplateOf(base()).Hash() {
		t.Fatal("hash is not stable")
	}
	cases := []struct {
		name      string
		mutate    func(*workloadv1alpha1.ModelServing)
		changes   bool
		roleP, rD bool // whether the role hashes of p and d change
	}{
		{"replicas", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](9) }, false, false, false},
		{"role replicas", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Template.Roles[0].Replicas = ptr.To[int32](5) }, false, false, false},
		{"role budget", func(ms *workloadv1alpha1.ModelServing) {
			v := intstr.FromInt32(1)
			ms.Spec.Template.Roles[0].MaxUnavailable, ms.Spec.Template.Roles[0].Partition = &v, &v
		}, false, false, false},
		{"scheduler", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.SchedulerName = "x" }, false, false, false},
		{"gang", func(ms *workloadv1alpha1.ModelServing) {
			ms.Spec.Template.GangPolicy = &workloadv1alpha1.GangPolicy{MinRoleReplicas: map[string]int32{"p": 1}}
		}, false, false, false},
		{"recovery", func(ms *workloadv1alpha1.ModelServing) { ms.Spec.RecoveryPolicy = workloadv1alpha1.NoneRestartPolicy }, false, false, false},
		{"image of p", func(ms *workloadv1alpha1.ModelServing) {
			ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "x"
		}, true, true, false},
		{"workers of d", func(ms *workloadv1alpha1.ModelServing) {
			ms.Spec.Template.Roles[1] = wrappers.MakeRole("d").Workers(2).Obj()
		}, true, false, true},
		{"plugins", func(ms *workloadv1alpha1.ModelServing) {
			ms.Spec.Plugins = []workloadv1alpha1.PluginSpec{{Name: "lws-standard-labels"}}
		}, true, true, true},
		{"role order", func(ms *workloadv1alpha1.ModelServing) {
			r := ms.Spec.Template.Roles
			r[0], r[1] = r[1], r[0]
		}, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := base()
			c.mutate(ms)
			tm := TemplateOf(ms)
			if got := tm.Hash() != refHash; got != c.changes {
				t.Errorf("revision changed = %v, want %v", got, c.changes)
			}
			if got := tm.RoleHash("p") != ref.RoleHash("p"); got != c.roleP {
				t.Errorf("role p hash changed = %v, want %v", got, c.roleP)
			}
			if got := tm.RoleHash("d") != ref.RoleHash("d"); got != c.rD {
				t.Errorf("role d hash changed = %v, want %v", got, c.rD)
			}
		})
	}
}

func TestRevisionSetRoundTrip(t *testing.T) {
	old := wrappers.MakeModelServing("ns", "m").Role(wrappers.MakeRole("p").Image("old").Obj()).Obj()
	oldT := TemplateOf(old)
	cr, err := newControllerRevision(old, &oldT, oldT.Hash(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Name != "m-"+oldT.Hash() || cr.Revision != 1 {
		t.Fatalf("revision %s/%d", cr.Name, cr.Revision)
	}
	cur := wrappers.MakeModelServing("ns", "m").Role(wrappers.MakeRole("p").Image("new").Obj()).Obj()
	curT := TemplateOf(cur)
	rs := newRevisionSet(&curT, []appsv1.ControllerRevision{*cr})
	got, rev := rs.template(oldT.Hash())
	if rev != oldT.Hash() || got.Role("p").EntryTemplate.Spec.Containers[0].Image != "old" {
		t.Fatalf("old template not restored: %s %+v", rev, got.Role("p"))
	}
	if got.RoleHash("p") != oldT.RoleHash("p") {
		t.Fatal("role hash of a restored template differs")
	}
	if _, rev := rs.template("unknown"); rev != curT.Hash() {
		t.Fatal("unknown revision must fall back to the update revision")
	}
	rs.current = curT.Hash()
	if stale := rs.stale(map[string]bool{}); len(stale) != 1 || stale[0].Name != cr.Name {
		t.Fatalf("stale = %v", stale)
	}
	if stale := rs.stale(map[string]bool{oldT.Hash(): true}); len(stale) != 0 {
		t.Fatalf("a revision in use is stale: %v", stale)
	}
}
