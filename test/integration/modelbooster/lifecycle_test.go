package modelbooster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func engineArgs(ms *workloadv1alpha1.ModelServing) []string {
	c := ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0]
	return append(append([]string{}, c.Command...), c.Args...)
}

// TestStatusAndUpdate follows a booster from creation to Active, then
// changes its engine config: the ModelServing template changes, the pods
// roll through the ModelServing's own rollout, and the booster reports
// Updating until they have.
func TestStatusAndUpdate(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns)
	mb := vllmBooster(ns, "m")
	if err := env.Client.Create(context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() error { return wantCondition(ns, "m", "Active", metav1.ConditionTrue) })
	for typ, s := range map[string]metav1.ConditionStatus{"Initialized": "True", "Failed": "False", "Updating": "False"} {
		if err := wantCondition(ns, "m", typ, s); err != nil {
			t.Error(err)
		}
	}
	get(t, ns, "m", mb)
	if msg := condition(mb, "Initialized").Message; !strings.Contains(msg, "ModelServing/m-vllm") || !strings.Contains(msg, "ModelRoute/m") {
		t.Errorf("Initialized message %q does not name the generated objects", msg)
	}
	before := podsOf(t, ns, "m-vllm")
	if len(before) != 1 {
		t.Fatalf("%d pods, want 1", len(before))
	}

	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Spec.Backend.Workers[0].Config = config(map[string]any{"max-model-len": 8192})
		mb.Spec.Backend.Replicas = 2
	})
	eventually(t, 60*time.Second, func() error {
		ms := &workloadv1alpha1.ModelServing{}
		get(t, ns, "m-vllm", ms)
		if args := strings.Join(engineArgs(ms), " "); !strings.Contains(args, "--max-model-len 8192") || strings.Contains(args, "enforce-eager") {
			return fmt.Errorf("engine args %q", args)
		}
		if *ms.Spec.Replicas != 2 {
			return fmt.Errorf("replicas %d", *ms.Spec.Replicas)
		}
		return nil
	})
	// The old pod is replaced by the ModelServing's rollout: every pod now
	// runs the new template.
	eventually(t, 60*time.Second, func() error {
		pods := podsOf(t, ns, "m-vllm")
		if len(pods) != 2 {
			return fmt.Errorf("%d pods, want 2", len(pods))
		}
		for _, p := range pods {
			if p.UID == before[0].UID {
				return fmt.Errorf("pod %s not rolled", p.Name)
			}
			if !slices.Contains(p.Spec.Containers[0].Args, "8192") {
				return fmt.Errorf("pod %s runs %v", p.Name, p.Spec.Containers[0].Args)
			}
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		if err := wantCondition(ns, "m", "Updating", metav1.ConditionFalse); err != nil {
			return err
		}
		return wantCondition(ns, "m", "Active", metav1.ConditionTrue)
	})
	if err := hasEvent(t, ns, "m", "Updated"); err != nil {
		t.Error(err)
	}
}

// TestHandEditsRestored edits, and deletes, generated objects by hand: the
// controller's fields come back, a field it never sets (a rate limit on
// the route) stays.
func TestHandEditsRestored(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	mb := vllmBooster(ns, "m")
	if err := env.Client.Create(context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	ms, srv, route := &workloadv1alpha1.ModelServing{}, &networkingv1alpha1.ModelServer{}, &networkingv1alpha1.ModelRoute{}
	eventually(t, 30*time.Second, func() error { return exists(ns, "m", route) })
	eventually(t, 30*time.Second, func() error { return wantCondition(ns, "m", "Initialized", metav1.ConditionTrue) })

	get(t, ns, "m-vllm", ms)
	ms.Spec.Replicas = ptr(int32(5))
	ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image = "evil/image:latest"
	if err := env.Client.Update(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	get(t, ns, "m-vllm", srv)
	srv.Spec.WorkloadPort.Port = 9999
	// A changed value comes back; a key added to a map would stay (server-side
	// apply leaves other managers' keys alone, see docs/modelbooster.md).
	srv.Spec.WorkloadSelector.MatchLabels = map[string]string{"modelserving.volcano.sh/name": "other"}
	if err := env.Client.Update(context.Background(), srv); err != nil {
		t.Fatal(err)
	}
	get(t, ns, "m", route)
	route.Spec.Rules[0].TargetModels[0].ModelServerName = "elsewhere"
	route.Spec.RateLimit = &networkingv1alpha1.RateLimit{InputTokensPerUnit: ptr(uint32(100)), Unit: networkingv1alpha1.Second}
	if err := env.Client.Update(context.Background(), route); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		get(t, ns, "m-vllm", ms)
		get(t, ns, "m-vllm", srv)
		get(t, ns, "m", route)
		switch {
		case *ms.Spec.Replicas != 1 || ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image != "vllm/vllm-openai:v0.10.1":
			return fmt.Errorf("ModelServing not restored: replicas %d image %s", *ms.Spec.Replicas, ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0].Image)
		case srv.Spec.WorkloadPort.Port != 8000 || srv.Spec.WorkloadSelector.MatchLabels["modelserving.volcano.sh/name"] != "m-vllm" || len(srv.Spec.WorkloadSelector.MatchLabels) != 1:
			return fmt.Errorf("ModelServer not restored: %+v", srv.Spec)
		case route.Spec.Rules[0].TargetModels[0].ModelServerName != "m-vllm":
			return fmt.Errorf("ModelRoute not restored: %+v", route.Spec.Rules[0].TargetModels[0])
		}
		return nil
	})
	if route.Spec.RateLimit == nil || *route.Spec.RateLimit.InputTokensPerUnit != 100 {
		t.Errorf("the hand-added rateLimit was dropped: %+v", route.Spec.RateLimit)
	}
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "m", "Restored") })

	// A deleted object comes back (what the garbage collector would not do).
	uid := srv.UID
	if err := env.Client.Delete(context.Background(), srv); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		s := &networkingv1alpha1.ModelServer{}
		if err := exists(ns, "m-vllm", s); err != nil {
			return err
		}
		if s.UID == uid {
			return fmt.Errorf("not re-created yet")
		}
		return nil
	})
}

// TestRenameAndConflict renames the backend (the old ModelServing and
// ModelServer go, new ones come) and points a booster at a name another
// controller owns (Failed, with the object named).
func TestRenameAndConflict(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	mb := vllmBooster(ns, "m")
	if err := env.Client.Create(context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error { return exists(ns, "m-vllm", &workloadv1alpha1.ModelServing{}) })
	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Spec.Backend.Name = "v2"
	})
	eventually(t, 30*time.Second, func() error {
		if err := exists(ns, "m-v2", &workloadv1alpha1.ModelServing{}); err != nil {
			return err
		}
		if err := gone(ns, "m-vllm", &workloadv1alpha1.ModelServing{}); err != nil {
			return err
		}
		if err := gone(ns, "m-vllm", &networkingv1alpha1.ModelServer{}); err != nil {
			return err
		}
		route := &networkingv1alpha1.ModelRoute{}
		get(t, ns, "m", route)
		if got := route.Spec.Rules[0].TargetModels[0].ModelServerName; got != "m-v2" {
			return fmt.Errorf("route targets %s", got)
		}
		return nil
	})
	if err := hasEvent(t, ns, "m", "Deleted"); err != nil {
		t.Error(err)
	}

	// A route of the same name controlled by something else is not taken over.
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "owner"}}
	if err := env.Client.Create(context.Background(), owner); err != nil {
		t.Fatal(err)
	}
	taken := &networkingv1alpha1.ModelRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "clash", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: owner.UID, Controller: ptr(true)}}},
		Spec: networkingv1alpha1.ModelRouteSpec{ModelName: "other", Rules: []*networkingv1alpha1.Rule{{
			TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: "x"}}}}},
	}
	if err := env.Client.Create(context.Background(), taken); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(context.Background(), vllmBooster(ns, "clash")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if err := wantCondition(ns, "clash", "Failed", metav1.ConditionTrue); err != nil {
			return err
		}
		c := &workloadv1alpha1.ModelBooster{}
		get(t, ns, "clash", c)
		if msg := condition(c, "Failed").Message; !strings.Contains(msg, "ModelRoute clash") {
			return fmt.Errorf("Failed message %q does not name the route", msg)
		}
		return hasEvent(t, ns, "clash", "ApplyFailed")
	})
	consistently(t, time.Second, func() error {
		r := &networkingv1alpha1.ModelRoute{}
		get(t, ns, "clash", r)
		if r.Spec.ModelName != "other" {
			return fmt.Errorf("route taken over")
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

var _ client.Object = &workloadv1alpha1.ModelBooster{}
