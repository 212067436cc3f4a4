package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// mutation changes a sample manifest into an invalid one.
type mutation struct {
	name string
	edit func(t *testing.T, obj map[string]any)
	// wantField must appear in the rejection message: the field at fault.
	wantField string
}

func setAt(value any, path ...any) func(t *testing.T, obj map[string]any) {
	return func(t *testing.T, obj map[string]any) { set(t, obj, value, path...) }
}

// TestInvalidRejected: each invalid variant of a sample is rejected by the
// API server (schema, CEL or webhook) with a message that names the field.
func TestInvalidRejected(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	cases := map[string][]mutation{
		"workload_v1alpha1_modelserving.yaml": {
			{"uppercase role name", setAt("Prefill", "spec", "template", "roles", 0, "name"), "spec.template.roles[0].name"},
			{"negative replicas", setAt(-1, "spec", "replicas"), "spec.replicas"},
			{"workers without a worker template", setAt(2, "spec", "template", "roles", 1, "workerReplicas"), "spec.template.roles[1].workerTemplate"},
			{"maxUnavailable 0", setAt(0, "spec", "rolloutStrategy", "rollingUpdateConfiguration", "maxUnavailable"), "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable"},
			{"maxUnavailable bad percentage", setAt("150%", "spec", "rolloutStrategy", "rollingUpdateConfiguration", "maxUnavailable"), "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable"},
			{"gang policy names an unknown role", setAt(map[string]any{"router": 1}, "spec", "template", "gangPolicy", "minRoleReplicas"), "spec.template.gangPolicy.minRoleReplicas[router]"},
			{"gang minimum above replicas", setAt(map[string]any{"prefill": 3}, "spec", "template", "gangPolicy", "minRoleReplicas"), "spec.template.gangPolicy.minRoleReplicas[prefill]"},
			{"role rolling update with group recreate", func(t *testing.T, obj map[string]any) {
				set(t, obj, map[string]any{"type": "RoleRollingUpdate"}, "spec", "rolloutStrategy")
				set(t, obj, "ServingGroupRecreate", "spec", "recoveryPolicy")
			}, "spec.recoveryPolicy"},
			{"group rolling config with role rolling update", setAt("RoleRollingUpdate", "spec", "rolloutStrategy", "type"), "spec.rolloutStrategy.rollingUpdateConfiguration"},
			{"role partition without role rolling update", setAt(1, "spec", "template", "roles", 0, "partition"), "spec.template.roles[0].partition"},
			{"name too long for pod names", setAt(strings.Repeat("m", 50), "metadata", "name"), "metadata.name"},
			{"image with a space", setAt("vllm openai", "spec", "template", "roles", 0, "entryTemplate", "spec", "containers", 0, "image"), "spec.template.roles[0].entryTemplate.spec.containers[0].image"},
			{"duplicate role names", setAt("prefill", "spec", "template", "roles", 1, "name"), "spec.template.roles"},
			{"five roles", func(t *testing.T, obj map[string]any) {
				roles, _ := get(obj, "spec", "template", "roles")
				r := roles.([]any)
				set(t, obj, []any{r[0], r[1], r[0], r[1], r[0]}, "spec", "template", "roles")
			}, "spec.template.roles"},
			{"unknown recovery policy", setAt("Restart", "spec", "recoveryPolicy"), "spec.recoveryPolicy"},
		},
		"workload_v1alpha1_modelbooster.yaml": {
			{"unsupported model URI scheme", setAt("ftp://models/qwen", "spec", "backend", "modelURI"), "spec.backend.modelURI"},
			{"unknown backend type", setAt("Triton", "spec", "backend", "type"), "spec.backend.type"},
			{"prefill worker that consumes KV", setAt(`{"kv_connector":"NixlConnector","kv_role":"kv_consumer"}`, "spec", "backend", "workers", 0, "config", "kv-transfer-config"), "spec.backend.workers[0].config.kv-transfer-config.kv_role"},
			{"workers on different ports", setAt(9000, "spec", "backend", "workers", 1, "config", "port"), "spec.backend.workers[1].config.port"},
			{"missing image", setAt(nil, "spec", "backend", "workers", 0, "image"), "spec.backend.workers[0].image"},
			{"disaggregated backend without decode", setAt("prefill", "spec", "backend", "workers", 1, "type"), "spec.backend.workers"},
			{"pvc model cached elsewhere", setAt("pvc://models/qwen", "spec", "backend", "modelURI"), "spec.backend.cacheURI"},
			{"replicas above the limit", setAt(2000000, "spec", "backend", "replicas"), "spec.backend.replicas"},
		},
		"workload_v1alpha1_autoscalingpolicy.yaml": {
			{"two targets", setAt(map[string]any{"minReplicas": 1, "maxReplicas": 2, "target": map[string]any{"targetRef": map[string]any{"name": "x"}}}, "spec", "homogeneousTarget"), "exactly one of homogeneousTarget"},
			{"duplicate metric names", setAt([]any{map[string]any{"name": "waiting", "targetValue": "5"}, map[string]any{"name": "waiting", "targetValue": "6"}}, "spec", "metrics"), "spec.metrics[1].name"},
			{"metric target of 0", setAt("0", "spec", "metrics", 0, "targetValue"), "spec.metrics[0].targetValue"},
			{"ratio minimum above maximum", setAt("5", "spec", "disaggregatedTarget", "ratioConstraint", "minRatio"), "spec.disaggregatedTarget.ratioConstraint.minRatio"},
			{"target kind not ModelServing", setAt("Deployment", "spec", "disaggregatedTarget", "targetRef", "kind"), "spec.disaggregatedTarget.targetRef.kind"},
			{"stabilization window of 2 hours", setAt("2h", "spec", "behavior", "scaleDown", "stabilizationWindow"), "spec.behavior.scaleDown.stabilizationWindow"},
			{"tolerance above 100", setAt(150, "spec", "tolerancePercent"), "spec.tolerancePercent"},
			{"role minimum above maximum", setAt(9, "spec", "disaggregatedTarget", "roles", "decode", "minReplicas"), "spec.disaggregatedTarget.roles[decode].minReplicas"},
			{"metric source for an unknown metric", setAt(map[string]any{"pod": map[string]any{"name": "x"}}, "spec", "disaggregatedTarget", "roles", "prefill", "metricSources", "latency"), "spec.disaggregatedTarget.roles[prefill].metricSources[latency]"},
			{"metric source with two backends", setAt(map[string]any{"serverURL": "http://p:9090", "query": "up"}, "spec", "disaggregatedTarget", "roles", "prefill", "metricSources", "waiting", "prometheus"), "pod and prometheus are mutually exclusive"},
		},
		"networking_v1alpha1_modelserver.yaml": {
			{"unknown engine", setAt("Triton", "spec", "inferenceEngine"), "spec.inferenceEngine"},
			{"port 0", setAt(0, "spec", "workloadPort", "port"), "spec.workloadPort.port"},
			{"empty selector", setAt(map[string]any{}, "spec", "workloadSelector", "matchLabels"), "spec.workloadSelector.matchLabels"},
			{"pd group without group key", setAt(nil, "spec", "workloadSelector", "pdGroup", "groupKey"), "spec.workloadSelector.pdGroup.groupKey"},
			{"pd group labels that do not tell pods apart", setAt(map[string]any{"pd-role": "prefill"}, "spec", "workloadSelector", "pdGroup", "decodeLabels"), "spec.workloadSelector.pdGroup.decodeLabels"},
			{"unknown KV connector", setAt("rdma", "spec", "kvConnector", "type"), "spec.kvConnector.type"},
			{"invalid label value", setAt(map[string]any{"app": "has space"}, "spec", "workloadSelector", "matchLabels"), "spec.workloadSelector.matchLabels[app]"},
			{"session sticky without sources", setAt(map[string]any{"sessionAffinitySeconds": 60}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sources"},
			{"session sticky with an empty source list", setAt(map[string]any{"sources": []any{}}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sources"},
			{"session sticky header that is not a token", setAt(map[string]any{"sources": []any{
				map[string]any{"type": "Header", "name": "X Session"},
			}}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sources[0].name"},
			{"session sticky empty claim name", setAt(map[string]any{"sources": []any{
				map[string]any{"type": "Query", "name": "session_id"}, map[string]any{"type": "JWTClaim", "name": ""},
			}}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sources[1].name"},
			{"session sticky unknown source type", setAt(map[string]any{"sources": []any{
				map[string]any{"type": "Body", "name": "session_id"},
			}}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sources[0].type"},
			{"session sticky ttl 0", setAt(map[string]any{"sessionAffinitySeconds": 0, "sources": []any{
				map[string]any{"type": "Cookie", "name": "sid"},
			}}, "spec", "trafficPolicy", "sessionSticky"), "spec.trafficPolicy.sessionSticky.sessionAffinitySeconds"},
		},
		"networking_v1alpha1_modelroute.yaml": {
			{"regex that does not compile", setAt("([a-z", "spec", "rules", 0, "modelMatch", "headers", "x-region", "regex"), "spec.rules[0].modelMatch.headers[x-region].regex"},
			{"weights that sum to 0", func(t *testing.T, obj map[string]any) {
				set(t, obj, 0, "spec", "rules", 1, "targetModels", 0, "weight")
				set(t, obj, 0, "spec", "rules", 1, "targetModels", 1, "weight")
			}, "spec.rules[1].targetModels"},
			{"target with two backends", setAt("openai", "spec", "rules", 0, "targetModels", 0, "externalModelProviderName"), "spec.rules[0].targetModels[0]"},
			{"no model name and no adapters", func(t *testing.T, obj map[string]any) {
				set(t, obj, nil, "spec", "modelName")
				set(t, obj, nil, "spec", "loraAdapters")
			}, "modelName"},
			{"LoRA route to an external provider", setAt(map[string]any{"externalModelProviderName": "openai"}, "spec", "rules", 0, "targetModels", 0), "spec.rules[0].targetModels[0].externalModelProviderName"},
			{"empty LoRA adapter name", setAt("", "spec", "loraAdapters", 0), "spec.loraAdapters[0]"},
			{"string match with two kinds", setAt("/v1", "spec", "rules", 0, "modelMatch", "uri", "exact"), "spec.rules[0].modelMatch.uri"},
			{"weight above 100", setAt(150, "spec", "rules", 1, "targetModels", 0, "weight"), "spec.rules[1].targetModels[0].weight"},
			{"redis address without a port", setAt("redis-server", "spec", "rateLimit", "global", "redis", "address"), "spec.rateLimit.global.redis.address"},
		},
		"networking_v1alpha1_externalmodelprovider.yaml": {
			{"plain http", setAt("http://api.deepseek.com", "spec", "baseURL"), "spec.baseURL"},
			{"reserved header", setAt(map[string]any{"Authorization": "Bearer x"}, "spec", "headers"), "spec.headers[Authorization]"},
			{"credentials in the URL", setAt("https://user:pass@api.deepseek.com", "spec", "baseURL"), "spec.baseURL"},
			{"query in the URL", setAt("https://api.deepseek.com/?key=1", "spec", "baseURL"), "spec.baseURL"},
			{"optional secret", setAt(true, "spec", "auth", "secretRef", "optional"), "spec.auth.secretRef.optional"},
			{"unknown provider", setAt("Gemini", "spec", "providerType"), "spec.providerType"},
		},
	}
	for file, muts := range cases {
		for _, m := range muts {
			t.Run(file+"/"+m.name, func(t *testing.T) {
				obj := sample(t, file)
				obj.SetNamespace(ns)
				m.edit(t, obj.Object)
				err := env.Client.Create(ctx, obj)
				if err == nil {
					t.Fatalf("accepted an invalid object")
				}
				t.Logf("rejected: %v", err)
				if !strings.Contains(err.Error(), m.wantField) {
					t.Fatalf("rejection does not name %q: %v", m.wantField, err)
				}
			})
		}
	}
}

// TestModelNameImmutable: a route's model name cannot change after creation.
func TestModelNameImmutable(t *testing.T) {
	ctx := context.Background()
	obj := sample(t, "networking_v1alpha1_modelroute.yaml")
	obj.SetNamespace(namespace(t))
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	set(t, obj.Object, "other-model", "spec", "modelName")
	err := env.Client.Update(ctx, obj)
	if err == nil || !strings.Contains(err.Error(), "modelName is immutable") {
		t.Fatalf("want an immutability error, got %v", err)
	}
}

// TestGangPolicyImmutable: minRoleReplicas cannot change, and a gang policy
// cannot be removed once set.
func TestGangPolicyImmutable(t *testing.T) {
	ctx := context.Background()
	obj := sample(t, "workload_v1alpha1_modelserving.yaml")
	obj.SetNamespace(namespace(t))
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	changed := obj.DeepCopy()
	set(t, changed.Object, map[string]any{"prefill": 2, "decode": 1}, "spec", "template", "gangPolicy", "minRoleReplicas")
	if err := env.Client.Update(ctx, changed); err == nil || !strings.Contains(err.Error(), "minRoleReplicas is immutable") {
		t.Fatalf("want an immutability error, got %v", err)
	}
	removed := obj.DeepCopy()
	set(t, removed.Object, nil, "spec", "template", "gangPolicy")
	if err := env.Client.Update(ctx, removed); err == nil || !strings.Contains(err.Error(), "gangPolicy cannot be removed") {
		t.Fatalf("want a removal error, got %v", err)
	}
}

// TestDuplicateHostAliasesAccepted: a pod template may list one IP in two
// host aliases, as a Pod may (upstream's e2e relies on it).
func TestDuplicateHostAliasesAccepted(t *testing.T) {
	obj := sample(t, "workload_v1alpha1_modelserving.yaml")
	obj.SetNamespace(namespace(t))
	set(t, obj.Object, []any{
		map[string]any{"ip": "10.0.0.1", "hostnames": []any{"a.example"}},
		map[string]any{"ip": "10.0.0.1", "hostnames": []any{"b.example"}},
	}, "spec", "template", "roles", 0, "entryTemplate", "spec", "hostAliases")
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("duplicate host alias IPs rejected: %v", err)
	}
}

// TestSessionStickyAccepted: a session sticky policy written for upstream
// Kthena is accepted as is, and an unset lifetime defaults to 3 hours.
func TestSessionStickyAccepted(t *testing.T) {
	ctx := context.Background()
	obj := sample(t, "networking_v1alpha1_modelserver.yaml")
	obj.SetNamespace(namespace(t))
	set(t, obj.Object, map[string]any{"sources": []any{
		map[string]any{"type": "Header", "name": "X-Session-ID"},
		map[string]any{"type": "Query", "name": "session_id"},
		map[string]any{"type": "Cookie", "name": "sid"},
		map[string]any{"type": "JWTClaim", "name": "sub"},
	}}, "spec", "trafficPolicy", "sessionSticky")
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatalf("session sticky policy rejected: %v", err)
	}
	ttl, _ := get(obj.Object, "spec", "trafficPolicy", "sessionSticky", "sessionAffinitySeconds")
	if fmt.Sprint(ttl) != "10800" {
		t.Fatalf("sessionAffinitySeconds defaulted to %v, want 10800", ttl)
	}
}
