package api

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var nsCounter atomic.Int32

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("api-%d", nsCounter.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

var samples = []struct {
	kind string
	file string
}{
	{"ModelServing", "workload_v1alpha1_modelserving.yaml"},
	{"ModelBooster", "workload_v1alpha1_modelbooster.yaml"},
	{"AutoscalingPolicy", "workload_v1alpha1_autoscalingpolicy.yaml"},
	{"ModelServer", "networking_v1alpha1_modelserver.yaml"},
	{"ModelRoute", "networking_v1alpha1_modelroute.yaml"},
	{"ExternalModelProvider", "networking_v1alpha1_externalmodelprovider.yaml"},
}

// TestRoundTrip: a full upstream-style manifest of each kind is accepted and
// every field comes back as written.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, s := range samples {
		t.Run(s.kind, func(t *testing.T) {
			obj := sample(t, s.file)
			obj.SetNamespace(ns)
			want := obj.DeepCopy()
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			if err := env.Client.Get(ctx, objectKey(obj), got); err != nil {
				t.Fatal(err)
			}
			if diffs := contains(want.Object["spec"], got.Object["spec"], "spec"); len(diffs) > 0 {
				t.Errorf("spec changed on the way through the API server:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// TestDefaults: a minimal manifest of each kind comes back with the
// documented defaults, from the schema and from the defaulting webhooks.
func TestDefaults(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	for _, tc := range []struct {
		kind     string
		manifest string
		want     map[string]any // path "a.b[0].c" -> value
	}{
		{"ModelServing", `
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelServing
metadata: {name: minimal}
spec:
  template:
    roles:
    - name: server
      workerReplicas: 0
      entryTemplate: {spec: {containers: [{name: engine, image: kthena/sim}]}}`,
			map[string]any{
				"spec.replicas": 1, "spec.schedulerName": "volcano", "spec.recoveryPolicy": "RoleRecreate",
				"spec.template.restartGracePeriodSeconds": 0, "spec.template.roles[0].replicas": 1,
			}},
		{"ModelServing rollout", `
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelServing
metadata: {name: rollout}
spec:
  rolloutStrategy: {rollingUpdateConfiguration: {}}
  plugins: [{name: demo-pod-tweaks}]
  template:
    roles:
    - name: server
      workerReplicas: 0
      entryTemplate: {spec: {containers: [{name: engine, image: kthena/sim}]}}`,
			map[string]any{
				"spec.rolloutStrategy.type": "ServingGroupRollingUpdate", "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable": 1,
				"spec.plugins[0].type": "BuiltIn",
			}},
		{"ModelBooster", `
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelBooster
metadata: {name: minimal}
spec:
  backend:
    name: main
    type: vLLM
    modelURI: hf://Qwen/Qwen3-8B
    workers: [{image: vllm/vllm-openai:v0.11.0}]`,
			map[string]any{"spec.backend.workers[0].type": "server", "spec.backend.workers[0].pods": 1}},
		{"AutoscalingPolicy", `
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: AutoscalingPolicy
metadata: {name: minimal}
spec:
  metrics: [{name: waiting, targetValue: "10"}]
  homogeneousTarget:
    minReplicas: 1
    maxReplicas: 4
    target:
      targetRef: {name: llama}
      metricSources: {waiting: {pod: {name: "vllm:num_requests_waiting"}}}`,
			map[string]any{
				"spec.tolerancePercent": 10, "spec.behavior.scaleDown.stabilizationWindow": "5m",
				"spec.behavior.scaleDown.instances": 0, "spec.behavior.scaleUp.stablePolicy.instances": 4,
				"spec.behavior.scaleUp.panicPolicy.panicModeHold":              "0s",
				"spec.homogeneousTarget.target.metricSources.waiting.pod.uri":  "/metrics",
				"spec.homogeneousTarget.target.metricSources.waiting.pod.port": 8100,
			}},
		{"ModelServer", `
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: minimal}
spec:
  inferenceEngine: SGLang
  workloadSelector: {matchLabels: {app: llama}}
  workloadPort: {port: 30000}
  trafficPolicy: {retry: {attempts: 2}}
  kvConnector: {}`,
			map[string]any{"spec.workloadPort.protocol": "http", "spec.kvConnector.type": "http", "spec.trafficPolicy.retry.retryInterval": "100ms"}},
		{"ModelRoute", `
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: minimal}
spec:
  modelName: llama
  rules: [{targetModels: [{modelServerName: llama}]}]
  rateLimit: {inputTokensPerUnit: 10}`,
			map[string]any{"spec.rules[0].targetModels[0].weight": 100, "spec.rateLimit.unit": "second"}},
		{"ExternalModelProvider", `
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ExternalModelProvider
metadata: {name: minimal}
spec:
  baseURL: https://api.openai.com
  auth: {secretRef: {name: openai, key: token}}`,
			map[string]any{"spec.providerType": "OpenAI", "spec.auth.scheme": "Bearer"}},
		{"ExternalModelProvider anthropic", `
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ExternalModelProvider
metadata: {name: anthropic}
spec:
  providerType: Anthropic
  baseURL: https://api.anthropic.com
  auth: {secretRef: {name: anthropic, key: token}}`,
			map[string]any{"spec.auth.scheme": "APIKey"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			obj := parse(t, tc.manifest)
			obj.SetNamespace(ns)
			if err := env.Client.Create(ctx, obj); err != nil {
				t.Fatalf("create: %v", err)
			}
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			if err := env.Client.Get(ctx, objectKey(obj), got); err != nil {
				t.Fatal(err)
			}
			for p, want := range tc.want {
				v, err := get(got.Object, parsePath(p)...)
				if err != nil {
					t.Errorf("%s: %v", p, err)
				} else if fmt.Sprint(v) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v", p, v, want)
				}
			}
		})
	}
}
