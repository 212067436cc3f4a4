package plugins

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func spec(name, config string, scope *workloadv1alpha1.PluginScope) workloadv1alpha1.PluginSpec {
	s := workloadv1alpha1.PluginSpec{Name: name, Type: workloadv1alpha1.PluginTypeBuiltIn, Scope: scope}
	if config != "" {
		s.Config = &apiextensionsv1.JSON{Raw: []byte(config)}
	}
	return s
}

func newReq(role string, entry bool) *HookRequest {
	w := 1
	if entry {
		w = 0
	}
	return &HookRequest{
		ModelServing: &workloadv1alpha1.ModelServing{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m"}},
		ServingGroup: "m-1", GroupIndex: 1, RoleName: role, RoleID: role + "-0", IsEntry: entry, WorkerIndex: w,
		Pod: &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "A", Value: "old"}}}}}},
	}
}

func TestChainErrors(t *testing.T) {
	r := NewBuiltInRegistry()
	for name, specs := range map[string][]workloadv1alpha1.PluginSpec{
		"unknown":        {spec("nope", "", nil)},
		"bad config":     {spec(DemoPodTweaksName, `{"runtimeClass": "x"}`, nil)},
		"lws has config": {spec(LWSStandardLabelsName, `{"a": 1}`, nil)},
		"bad type":       {{Name: DemoPodTweaksName, Type: "External"}},
	} {
		if _, err := r.Chain(specs); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := r.Register(DemoPodTweaksName, NewDemoPodTweaks); err == nil {
		t.Error("duplicate registration accepted")
	}
}

func TestDemoPodTweaksAndScope(t *testing.T) {
	r := NewBuiltInRegistry()
	c, err := r.Chain([]workloadv1alpha1.PluginSpec{
		spec(DemoPodTweaksName, `{"runtimeClassName":"gpu","annotations":{"x":"1"},"env":[{"name":"A","value":"new"},{"name":"B","value":"b"}]}`,
			&workloadv1alpha1.PluginScope{Roles: []string{"p"}, Target: workloadv1alpha1.PluginTargetEntry}),
		spec(LWSStandardLabelsName, "", nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	entry := newReq("p", true)
	if err := c.OnPodCreate(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	pod := entry.Pod
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName != "gpu" || pod.Annotations["x"] != "1" {
		t.Errorf("tweaks not applied: %+v", pod)
	}
	if env := pod.Spec.Containers[0].Env; len(env) != 2 || env[0].Value != "new" || env[1].Name != "B" {
		t.Errorf("env = %+v", env)
	}
	if pod.Labels[LWSNameLabel] != "m" || pod.Labels[LWSGroupIndexLabel] != "1" || pod.Labels[LWSWorkerIndexLabel] != "0" || pod.Labels[LWSGroupKeyLabel] == "" {
		t.Errorf("lws labels = %v", pod.Labels)
	}
	// Out of scope: a worker, and another role.
	for _, req := range []*HookRequest{newReq("p", false), newReq("d", true)} {
		if err := c.OnPodCreate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if req.Pod.Spec.RuntimeClassName != nil {
			t.Errorf("tweaks applied out of scope to %s entry=%v", req.RoleName, req.IsEntry)
		}
		if req.Pod.Labels[LWSNameLabel] != "m" {
			t.Error("unscoped plugin skipped")
		}
	}
}

type failing struct{}

func (failing) Name() string                                    { return "failing" }
func (failing) OnPodCreate(context.Context, *HookRequest) error { return errors.New("boom") }
func (failing) OnPodReady(context.Context, *HookRequest) error  { return errors.New("late") }

func TestChainStopsAtError(t *testing.T) {
	r := NewRegistry()
	r.MustRegister("failing", func([]byte) (Plugin, error) { return failing{}, nil })
	r.MustRegister(LWSStandardLabelsName, NewLWSStandardLabels)
	c, err := r.Chain([]workloadv1alpha1.PluginSpec{spec("failing", "", nil), spec(LWSStandardLabelsName, "", nil)})
	if err != nil {
		t.Fatal(err)
	}
	req := newReq("p", true)
	if err := c.OnPodCreate(context.Background(), req); err == nil || req.Pod.Labels != nil {
		t.Fatalf("err = %v, labels = %v", err, req.Pod.Labels)
	}
	if err := c.OnPodReady(context.Background(), req); err == nil {
		t.Fatal("OnPodReady error lost")
	}
}
