package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestDescribe: every kind describes with its spec summary, status,
// conditions and events.
func TestDescribe(t *testing.T) {
	ns := namespace(t, "cli-describe")
	objs := createSamples(t, ns)
	spec := map[string][]string{
		"ModelBooster":          {"Model Name:", "qwen3-8b", "Backend:", "vllm-h100 (vLLMDisaggregated)", "Workers:", "prefill: image vllm/vllm-openai:v0.11.0"},
		"ModelServing":          {"Replicas:", "Roles:", "prefill: replicas 2, workers 1"},
		"ModelServer":           {"Model:", "Engine:", "vLLM", "Port:", "8000 http"},
		"ModelRoute":            {"Model:", "deepseek-r1", "Rules:"},
		"AutoscalingPolicy":     {"Target:", "Metrics:"},
		"ExternalModelProvider": {"Base URL:", "https://api.deepseek.com", "Auth:"},
	}
	byKind := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		byKind[o.GetKind()] = o
	}
	for _, k := range kinds {
		obj := byKind[k.Kind]
		// An event about the object, as a controller would record it.
		ev := &corev1.Event{
			ObjectMeta: metav1.ObjectMeta{Name: obj.GetName() + "." + k.singular(), Namespace: ns},
			InvolvedObject: corev1.ObjectReference{
				Kind: k.Kind, APIVersion: obj.GetAPIVersion(), Name: obj.GetName(), Namespace: ns, UID: obj.GetUID(),
			},
			Reason: "Tested", Message: "described by the CLI test", Type: corev1.EventTypeNormal,
			Source:        corev1.EventSource{Component: "cli-test"},
			LastTimestamp: metav1.NewTime(time.Now()), FirstTimestamp: metav1.NewTime(time.Now()), Count: 1,
		}
		if err := env.Client.Create(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		out := kthenaOK(t, "describe", k.Aliases[len(k.Aliases)-1], obj.GetName(), "-n", ns)
		for _, want := range append([]string{"Name:", obj.GetName(), "Namespace:", ns, "Kind:", k.Kind, "Spec:", "Conditions:",
			"Events:", "Tested", "cli-test", "described by the CLI test"}, spec[k.Kind]...) {
			if !strings.Contains(out, want) {
				t.Errorf("describe %s lacks %q:\n%s", k.Kind, want, out)
			}
		}
	}
}

func TestDescribeStatus(t *testing.T) {
	ns := namespace(t, "cli-describe-status")
	ms := sample(t, "workload_v1alpha1_modelserving.yaml")
	ms.SetNamespace(ns)
	if err := env.Client.Create(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	ms.Object["status"] = map[string]any{
		"replicas": int64(2), "availableReplicas": int64(1),
		"conditions": []any{map[string]any{
			"type": "Available", "status": "False", "reason": "GroupsNotReady", "message": "1 of 2 serving groups ready",
			"lastTransitionTime": "2026-01-02T03:04:05Z",
		}},
	}
	if err := env.Client.Status().Update(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	out := kthenaOK(t, "describe", "ms", ms.GetName(), "-n", ns)
	for _, want := range []string{"Status:", "availableReplicas:", "Available", "GroupsNotReady", "1 of 2 serving groups ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^Events:\s+<none>$`).MatchString(out) {
		t.Errorf("describe of an object without events does not say Events: <none>:\n%s", out)
	}
}

func TestDescribeErrors(t *testing.T) {
	kc := []string{"--kubeconfig", env.Kubeconfig}
	oneLineError(t, `"nope" not found`, append([]string{"describe", "ms", "nope"}, kc...)...)
	oneLineError(t, `unknown kind "deployment"`, append([]string{"describe", "deployment", "x"}, kc...)...)
	oneLineError(t, "accepts 2 arg(s), received 1", append([]string{"describe", "ms"}, kc...)...)
}
