package platform

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/modelbooster"
	networkingwebhook "github.com/kthena/kthena/internal/webhook/networking/v1alpha1"
	workloadwebhook "github.com/kthena/kthena/internal/webhook/workload/v1alpha1"
)

// decodeDemo decodes a demo's documents into typed objects, failing on
// fields the types do not know.
func decodeDemo(t *testing.T, kind string) []runtime.Object {
	t.Helper()
	data, err := DemoManifests(kind)
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}
			t.Fatal(err)
		}
		if len(u.Object) == 0 {
			continue
		}
		obj, err := Scheme().New(u.GroupVersionKind())
		if err != nil {
			t.Fatal(err)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		out = append(out, obj)
	}
}

// TestDemoManifestsAdmitted: every demo decodes strictly and passes the
// admission webhooks' validation.
func TestDemoManifestsAdmitted(t *testing.T) {
	for _, kind := range DemoKinds() {
		objs := decodeDemo(t, kind)
		want := 3
		switch kind {
		case DemoAutoscaling:
			want = 4 // and its AutoscalingPolicy
		case DemoBooster:
			want = 1 // the ModelBooster generates the rest
		}
		if len(objs) != want {
			t.Errorf("demo %s: %d objects, want %d", kind, len(objs), want)
		}
		for _, o := range objs {
			switch o := o.(type) {
			case *workloadv1alpha1.ModelBooster:
				if errs := workloadwebhook.ValidateModelBooster(o); len(errs) > 0 {
					t.Errorf("demo %s: ModelBooster %s rejected: %v", kind, o.Name, errs.ToAggregate())
				}
			case *workloadv1alpha1.ModelServing:
				if errs := workloadwebhook.ValidateModelServing(o, nil); len(errs) > 0 {
					t.Errorf("demo %s: ModelServing %s rejected: %v", kind, o.Name, errs.ToAggregate())
				}
			case *networkingv1alpha1.ModelServer:
				if errs := networkingwebhook.ValidateModelServer(o); len(errs) > 0 {
					t.Errorf("demo %s: ModelServer %s rejected: %v", kind, o.Name, errs.ToAggregate())
				}
			case *networkingv1alpha1.ModelRoute:
				if errs := networkingwebhook.ValidateModelRoute(o); len(errs) > 0 {
					t.Errorf("demo %s: ModelRoute %s rejected: %v", kind, o.Name, errs.ToAggregate())
				}
			case *workloadv1alpha1.AutoscalingPolicy:
				if errs := workloadwebhook.ValidateAutoscalingPolicy(o); len(errs) > 0 {
					t.Errorf("demo %s: AutoscalingPolicy %s rejected: %v", kind, o.Name, errs.ToAggregate())
				}
			default:
				t.Errorf("demo %s: unexpected %T", kind, o)
			}
		}
	}
}

// TestPDDemoPairs: the PD demo's ModelServer pairs pods by the labels the
// ModelServing controller puts on them, and every role runs the
// simulator with the matching --kv-role.
func TestPDDemoPairs(t *testing.T) {
	var ms *workloadv1alpha1.ModelServing
	var srv *networkingv1alpha1.ModelServer
	var route *networkingv1alpha1.ModelRoute
	for _, o := range decodeDemo(t, DemoPD) {
		switch o := o.(type) {
		case *workloadv1alpha1.ModelServing:
			ms = o
		case *networkingv1alpha1.ModelServer:
			srv = o
		case *networkingv1alpha1.ModelRoute:
			route = o
		}
	}
	if ms == nil || srv == nil || route == nil {
		t.Fatal("the PD demo lacks a ModelServing, ModelServer or ModelRoute")
	}
	if route.Spec.ModelName != DemoPDModel || route.Spec.Rules[0].TargetModels[0].ModelServerName != srv.Name {
		t.Errorf("route serves %q through %q", route.Spec.ModelName, route.Spec.Rules[0].TargetModels[0].ModelServerName)
	}
	if ms.Spec.Replicas == nil || *ms.Spec.Replicas != 2 {
		t.Errorf("ModelServing replicas %v, want 2 serving groups", ms.Spec.Replicas)
	}
	pd := srv.Spec.WorkloadSelector.PDGroup
	if pd == nil || pd.GroupKey != workloadv1alpha1.GroupNameLabelKey {
		t.Fatalf("pdGroup %+v, want groupKey %s", pd, workloadv1alpha1.GroupNameLabelKey)
	}
	if srv.Spec.KVConnector == nil || srv.Spec.KVConnector.Type != networkingv1alpha1.ConnectorTypeNIXL {
		t.Errorf("kvConnector %+v, want nixl", srv.Spec.KVConnector)
	}
	selects := map[string]map[string]string{"prefill": pd.PrefillLabels, "decode": pd.DecodeLabels}
	if len(ms.Spec.Template.Roles) != 2 {
		t.Fatalf("%d roles, want prefill and decode", len(ms.Spec.Template.Roles))
	}
	for _, role := range ms.Spec.Template.Roles {
		want, ok := selects[role.Name]
		if !ok {
			t.Errorf("role %q is neither prefill nor decode", role.Name)
			continue
		}
		// The labels the controller gives this role's pods, plus the template's.
		podLabels := map[string]string{workloadv1alpha1.RoleLabelKey: role.Name, workloadv1alpha1.GroupNameLabelKey: ms.Name + "-0"}
		for k, v := range role.EntryTemplate.Metadata.Labels {
			podLabels[k] = v
		}
		for k, v := range srv.Spec.WorkloadSelector.MatchLabels {
			if podLabels[k] != v {
				t.Errorf("role %s: pods lack the workload label %s=%s", role.Name, k, v)
			}
		}
		for k, v := range want {
			if podLabels[k] != v {
				t.Errorf("role %s: pods lack the %s label %s=%s", role.Name, role.Name, k, v)
			}
		}
		args := strings.Join(role.EntryTemplate.Spec.Containers[0].Args, " ")
		if !strings.Contains(args, "--kv-role "+role.Name) {
			t.Errorf("role %s runs %q, want --kv-role %s", role.Name, args, role.Name)
		}
	}
}

// TestBoosterDemoGenerates: the booster demo's ModelBooster generates a
// ModelServing of two engines that the node agent runs as the simulator
// (its image), serving the demo's model name on the port the ModelServer
// is given, with the simulator's flags from the worker's config.
func TestBoosterDemoGenerates(t *testing.T) {
	objs := decodeDemo(t, DemoBooster)
	mb, ok := objs[0].(*workloadv1alpha1.ModelBooster)
	if !ok {
		t.Fatalf("booster demo holds %T, want a ModelBooster", objs[0])
	}
	if mb.Name != DemoBoosterModel || mb.Spec.Name != DemoBoosterModel {
		t.Errorf("ModelBooster %q serves %q, want %q for both", mb.Name, mb.Spec.Name, DemoBoosterModel)
	}
	ms, ferr := modelbooster.GenerateModelServing(mb)
	if ferr != nil {
		t.Fatalf("the controller cannot generate the ModelServing: %v", ferr)
	}
	if ms.Spec.Replicas == nil || *ms.Spec.Replicas != 2 {
		t.Errorf("ModelServing replicas %v, want 2 engines", ms.Spec.Replicas)
	}
	if len(ms.Spec.Template.Roles) != 1 {
		t.Fatalf("%d roles, want one server role", len(ms.Spec.Template.Roles))
	}
	c := ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/llm-d/llm-d-inference-sim:") {
		t.Errorf("engine image %s, want the simulator's (the node agent runs a vLLM image as vLLM where one is installed)", c.Image)
	}
	args := " " + strings.Join(append(append([]string{}, c.Command...), c.Args...), " ") + " "
	for _, want := range []string{" --served-model-name " + DemoBoosterModel + " ", " --port 8000 ", " --time-scale 0.1 ", " --mode random "} {
		if !strings.Contains(args, want) {
			t.Errorf("engine command %q lacks %q", args, want)
		}
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8000 || c.ReadinessProbe == nil {
		t.Errorf("engine ports %+v, readiness probe %v: want port 8000 and a probe", c.Ports, c.ReadinessProbe)
	}
}

func TestDemoKinds(t *testing.T) {
	for _, kind := range []string{"", DemoAggregated, DemoPD, DemoAutoscaling, DemoBooster} {
		if !ValidDemoKind(kind) {
			t.Errorf("%q is not a demo kind", kind)
		}
	}
	if ValidDemoKind("nope") {
		t.Error(`"nope" is a demo kind`)
	}
	if body, _ := DemoChatBody(""); body != ChatBody || !strings.Contains(body, `"model":"demo"`) {
		t.Errorf("default demo body %s", body)
	}
	if body, _ := DemoChatBody(DemoPD); !strings.Contains(body, `"model":"demo-pd"`) {
		t.Errorf("PD demo body %s", body)
	}
	if body, _ := DemoChatBody(DemoBooster); !strings.Contains(body, `"model":"demo-booster"`) {
		t.Errorf("booster demo body %s", body)
	}
}

// TestDemoPDPrompt: the PD demo's prompt is long enough for the router's
// default decider (512 uncached tokens, about 2 KB) and starts with its tag.
func TestDemoPDPrompt(t *testing.T) {
	p := DemoPDPrompt("tag one")
	if len(p) < 4000 || !strings.HasPrefix(p, "tag one") || strings.HasPrefix(DemoPDPrompt("tag two"), "tag one") {
		t.Errorf("prompt of %d bytes: %.80q", len(p), p)
	}
	body := demoPDBody("x")
	if !strings.Contains(body, `"model":"demo-pd"`) {
		t.Errorf("body %.100s", body)
	}
}

func TestDescribeDecision(t *testing.T) {
	got := describeDecision(`{"mode":"pd","pair":{"prefill":"default/a","decode":"default/b","group":"g-0"}}`)
	if got != "prefill default/a -> decode default/b (group g-0)" {
		t.Errorf("got %q", got)
	}
	if got := describeDecision(`{"chosen":"default/a"}`); got != "" {
		t.Errorf("no pair: got %q", got)
	}
}
