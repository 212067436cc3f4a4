package chart

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/testing/controlplane"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

func TestLint(t *testing.T) {
	for _, sets := range [][]string{
		nil,
		{"networking.enabled=false"},
		{"workload.enabled=false"},
		{"certificates.mode=certManager", "networking.router.metrics.serviceMonitor.enabled=true", "workload.controllerManager.metrics.serviceMonitor.enabled=true"},
	} {
		args := []string{"lint", "--strict", chartDir}
		for _, s := range sets {
			args = append(args, "--set", s)
		}
		if out, err := helm(args...); err != nil {
			t.Errorf("%v: %v\n%s", sets, err, out)
		}
	}
}

var (
	workloadObjects = []string{
		"CustomResourceDefinition/modelservings.workload.serving.volcano.sh",
		"CustomResourceDefinition/modelboosters.workload.serving.volcano.sh",
		"CustomResourceDefinition/autoscalingpolicies.workload.serving.volcano.sh",
		"Deployment/kthena-controller-manager", "ServiceAccount/kthena-controller-manager",
		"Service/kthena-controller-manager-webhook", "Service/kthena-controller-manager-metrics",
		"ClusterRole/kthena-controller-manager", "ClusterRoleBinding/kthena-controller-manager",
		"Role/kthena-controller-manager", "RoleBinding/kthena-controller-manager",
		"ValidatingWebhookConfiguration/kthena-workload-validating", "MutatingWebhookConfiguration/kthena-workload-mutating",
		"PodDisruptionBudget/kthena-controller-manager",
	}
	networkingObjects = []string{
		"CustomResourceDefinition/modelservers.networking.serving.volcano.sh",
		"CustomResourceDefinition/modelroutes.networking.serving.volcano.sh",
		"CustomResourceDefinition/externalmodelproviders.networking.serving.volcano.sh",
		"Deployment/kthena-router", "ServiceAccount/kthena-router", "ConfigMap/kthena-router-config",
		"Service/kthena-router", "Service/kthena-router-webhook",
		"ClusterRole/kthena-router", "ClusterRoleBinding/kthena-router", "Role/kthena-router", "RoleBinding/kthena-router",
		"ValidatingWebhookConfiguration/kthena-networking-validating", "MutatingWebhookConfiguration/kthena-networking-mutating",
		"PodDisruptionBudget/kthena-router",
	}
)

// TestPlanes: the default installs both planes; each switch leaves out
// exactly the other plane's objects.
func TestPlanes(t *testing.T) {
	for _, tc := range []struct {
		name string
		sets []string
		want []string
	}{
		{"both", nil, append(slices.Clone(workloadObjects), networkingObjects...)},
		{"workload", []string{"networking.enabled=false"}, workloadObjects},
		{"networking", []string{"workload.enabled=false"}, networkingObjects},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := names(render(t, tc.sets...))
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("missing %s", w)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("rendered %d objects, want %d: %v", len(got), len(tc.want), got)
			}
		})
	}
	t.Run("without CRDs and webhooks", func(t *testing.T) {
		got := names(render(t, "workload.crds.enabled=false", "networking.crds.enabled=false",
			"workload.webhook.enabled=false", "networking.webhook.enabled=false"))
		for n := range got {
			if strings.HasPrefix(n, "CustomResourceDefinition/") || strings.Contains(n, "WebhookConfiguration/") || strings.HasSuffix(n, "-webhook") {
				t.Errorf("unexpected %s", n)
			}
		}
		if !got["Deployment/kthena-router"] || !got["Deployment/kthena-controller-manager"] {
			t.Errorf("deployments missing: %v", got)
		}
	})
}

// TestCRDsAreConfigCRDs: the chart's CRDs are config/crd/bases, byte for
// byte in files/crds and object for object once rendered (apart from Helm's
// labels and the keep annotation).
func TestCRDsAreConfigCRDs(t *testing.T) {
	bases := filepath.Join(controlplane.RepoRoot(), "config", "crd", "bases")
	want, _ := filepath.Glob(filepath.Join(bases, "*.yaml"))
	got, _ := filepath.Glob(filepath.Join(chartDir, "files", "crds", "*.yaml"))
	if len(want) == 0 || len(got) != len(want) {
		t.Fatalf("chart has %d CRD files, config/crd/bases %d: run make chart-generate", len(got), len(want))
	}
	rendered := render(t)
	for _, path := range want {
		base, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		copied, err := os.ReadFile(filepath.Join(chartDir, "files", "crds", filepath.Base(path)))
		if err != nil || !bytes.Equal(base, copied) {
			t.Errorf("charts/kthena/files/crds/%s differs from config/crd/bases: run make chart-generate", filepath.Base(path))
			continue
		}
		var wantCRD, gotCRD apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(base, &wantCRD); err != nil {
			t.Fatal(err)
		}
		into(t, find(rendered, "CustomResourceDefinition", wantCRD.Name), &gotCRD)
		if gotCRD.Labels["app.kubernetes.io/managed-by"] != "Helm" || gotCRD.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("%s: labels %v annotations %v", gotCRD.Name, gotCRD.Labels, gotCRD.Annotations)
		}
		gotCRD.Labels = nil
		delete(gotCRD.Annotations, "helm.sh/resource-policy")
		if !equality.Semantic.DeepEqual(wantCRD, gotCRD) {
			t.Errorf("rendered %s differs from config/crd/bases", wantCRD.Name)
		}
	}
	for _, o := range render(t, "crds.keep=false") {
		if o.GetKind() == "CustomResourceDefinition" && o.GetAnnotations()["helm.sh/resource-policy"] != "" {
			t.Errorf("%s kept with crds.keep=false", o.GetName())
		}
	}
}

func routerConfig(t *testing.T, objs []*unstructured.Unstructured) *config.RouterConfiguration {
	t.Helper()
	var cm corev1.ConfigMap
	into(t, find(objs, "ConfigMap", "kthena-router-config"), &cm)
	c, err := config.Parse([]byte(cm.Data["config.yaml"]))
	if err != nil {
		t.Fatalf("the router rejects the chart's configuration: %v\n%s", err, cm.Data["config.yaml"])
	}
	return c
}

// TestRouterConfigIsDefault: the chart's default router configuration is
// the router's built-in default; the Redis address turns on the shared
// session store.
func TestRouterConfigIsDefault(t *testing.T) {
	want, err := config.Parse([]byte(config.Default))
	if err != nil {
		t.Fatal(err)
	}
	if got := routerConfig(t, render(t)); !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		w, _ := yaml.Marshal(want)
		t.Errorf("chart's router configuration:\n%s\nrouter's default (internal/router/config.Default):\n%s", g, w)
	}
	objs := render(t, "networking.router.redis.address=redis.cache:6379", "networking.router.redis.passwordSecret.name=redis")
	got := routerConfig(t, objs)
	if ss := got.SessionSticky; ss == nil || ss.Store != config.SessionStoreRedis || ss.Redis.Address != "redis.cache:6379" {
		t.Errorf("sessionSticky = %+v", got.SessionSticky)
	}
	var d appsv1.Deployment
	into(t, find(objs, "Deployment", "kthena-router"), &d)
	env := d.Spec.Template.Spec.Containers[0].Env
	if len(env) != 1 || env[0].Name != "REDIS_PASSWORD" || env[0].ValueFrom.SecretKeyRef.Name != "redis" {
		t.Errorf("env = %+v", env)
	}
}

// TestSchemaRejects: bad values fail before anything is rendered, naming
// the value.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"networking.router.replicas=two", "/networking/router/replicas"},
		{"workload.controllerManager.replica=2", "additional properties 'replica' not allowed"},
		{"workload.webhook.failurePolicy=Never", "/workload/webhook/failurePolicy"},
		{"networking.webhook.timeoutSeconds=60", "/networking/webhook/timeoutSeconds"},
		{"networking.router.drainTimeout=5min", "/networking/router/drainTimeout"},
		{"networking.router.redis.address=redis", "/networking/router/redis/address"},
		{"networking.router.service.type=Ingress", "/networking/router/service/type"},
		{"networking.router.port=70000", "/networking/router/port"},
		{"networking.router.accessLog.format=xml", "/networking/router/accessLog/format"},
		{"networking.router.config.scheduler.topN=-1", "/networking/router/config/scheduler/topN"},
		{"networking.router.config.schedulr.topN=1", "additional properties 'schedulr' not allowed"},
		{"workload.controllerManager.controllers[0]=modelbooster", "/workload/controllerManager/controllers/0"},
		{"workload.controllerManager.image.digest=latest", "/workload/controllerManager/image/digest"},
		{"certificates.mode=auto", "/certificates/mode"},
		{"global.imagePullPolicy=Sometimes", "/global/imagePullPolicy"},
		{"workload.controllerManager.podDisruptionBudget.maxUnavailable=half", "/workload/controllerManager/podDisruptionBudget/maxUnavailable"},
		// Checks across values, made by the templates.
		{"workload.enabled=false,networking.enabled=false", "nothing to install"},
		{"workload.controllerManager.replicas=2,workload.controllerManager.leaderElection.enabled=false", "leaderElection.enabled=true"},
		{"networking.router.redis.passwordSecret.name=redis", "redis.address is empty"},
	} {
		out, err := helm("template", "kthena", chartDir, "--set", tc.set)
		if err == nil {
			t.Errorf("--set %s rendered:\n%.300s", tc.set, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: error does not mention %q:\n%v", tc.set, tc.want, err)
		}
	}
}

// TestWebhooksAreTheBinaries: the chart's webhook configurations are those
// the binaries name and fill (internal/webhook.Configurations), pointed at
// the chart's Services.
func TestWebhooksAreTheBinaries(t *testing.T) {
	objs := render(t, "workload.webhook.failurePolicy=Ignore", "networking.webhook.timeoutSeconds=5")
	for _, g := range []struct {
		group   kthenawebhook.Group
		service string
		policy  admissionregistrationv1.FailurePolicyType
		timeout int32
	}{
		{kthenawebhook.WorkloadGroup, "kthena-controller-manager-webhook", admissionregistrationv1.Ignore, 10},
		{kthenawebhook.NetworkingGroup, "kthena-router-webhook", admissionregistrationv1.Fail, 5},
	} {
		v, m, err := kthenawebhook.Configurations(g.group, kthenawebhook.ServiceClientConfig("kthena-system", g.service, 443, nil))
		if err != nil {
			t.Fatal(err)
		}
		for i := range v.Webhooks {
			v.Webhooks[i].FailurePolicy, v.Webhooks[i].TimeoutSeconds = ptr.To(g.policy), ptr.To(g.timeout)
		}
		for i := range m.Webhooks {
			m.Webhooks[i].FailurePolicy, m.Webhooks[i].TimeoutSeconds = ptr.To(g.policy), ptr.To(g.timeout)
		}
		var gotV admissionregistrationv1.ValidatingWebhookConfiguration
		var gotM admissionregistrationv1.MutatingWebhookConfiguration
		into(t, find(objs, "ValidatingWebhookConfiguration", v.Name), &gotV)
		into(t, find(objs, "MutatingWebhookConfiguration", m.Name), &gotM)
		if len(v.Webhooks) == 0 || !equality.Semantic.DeepEqual(gotV.Webhooks, v.Webhooks) {
			t.Errorf("%s: chart\n%+v\nbinaries\n%+v", v.Name, gotV.Webhooks, v.Webhooks)
		}
		if !equality.Semantic.DeepEqual(gotM.Webhooks, m.Webhooks) {
			t.Errorf("%s: chart\n%+v\nbinaries\n%+v", m.Name, gotM.Webhooks, m.Webhooks)
		}
	}
	for _, o := range render(t, "certificates.mode=certManager") {
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") && o.GetAnnotations()["cert-manager.io/inject-ca-from"] == "" {
			t.Errorf("%s %s: no cert-manager CA injection", o.GetKind(), o.GetName())
		}
	}
}

type grant struct{ group, resource, verb string }

func grants(rules []rbacv1.PolicyRule) map[grant]bool {
	m := map[grant]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					m[grant{g, res, v}] = true
				}
			}
		}
	}
	return m
}

// TestRBAC: no wildcard anywhere; the controller manager gets every
// permission of config/rbac/role.yaml; its own objects are narrowed to their
// names.
func TestRBAC(t *testing.T) {
	objs := render(t)
	var all []rbacv1.PolicyRule
	rulesOf := func(kind, name string) []rbacv1.PolicyRule {
		u := find(objs, kind, name)
		if kind == "Role" {
			var r rbacv1.Role
			into(t, u, &r)
			return r.Rules
		}
		var r rbacv1.ClusterRole
		into(t, u, &r)
		return r.Rules
	}
	for _, o := range objs {
		if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
			all = append(all, rulesOf(o.GetKind(), o.GetName())...)
		}
	}
	for _, r := range all {
		for _, s := range slices.Concat(r.APIGroups, r.Resources, r.Verbs, r.ResourceNames) {
			if strings.Contains(s, "*") {
				t.Errorf("wildcard in rule %+v", r)
			}
		}
	}
	data, err := os.ReadFile(filepath.Join(controlplane.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &generated); err != nil {
		t.Fatal(err)
	}
	cluster := rulesOf("ClusterRole", "kthena-controller-manager")
	namespaced := rulesOf("Role", "kthena-controller-manager")
	have := grants(append(slices.Clone(cluster), namespaced...))
	for g := range grants(generated.Rules) {
		if !have[g] {
			t.Errorf("controller manager lacks %+v of config/rbac/role.yaml", g)
		}
	}
	for g := range grants(cluster) {
		if g.resource == "secrets" || g.resource == "leases" {
			t.Errorf("controller manager gets %+v cluster-wide", g)
		}
	}
	for _, r := range slices.Concat(cluster, namespaced) {
		named := slices.ContainsFunc(r.Resources, func(s string) bool {
			return s == "secrets" || s == "leases" || strings.HasSuffix(s, "webhookconfigurations")
		})
		if named && len(r.ResourceNames) == 0 && !slices.Equal(r.Verbs, []string{"create"}) {
			t.Errorf("rule not narrowed to names: %+v", r)
		}
	}
	// With cert-manager and without leader election the manager needs no
	// Secret, Lease or webhook configuration access at all.
	objs = render(t, "certificates.mode=certManager", "workload.controllerManager.leaderElection.enabled=false")
	if find(objs, "Role", "kthena-controller-manager") != nil {
		t.Error("Role rendered though nothing needs it")
	}
	// The router confined to one namespace has no cluster-wide read access.
	objs = render(t, "networking.router.watchNamespace=models")
	var cr rbacv1.ClusterRole
	into(t, find(objs, "ClusterRole", "kthena-router"), &cr)
	for g := range grants(cr.Rules) {
		if g.verb == "list" || g.verb == "watch" {
			t.Errorf("router with watchNamespace gets %+v cluster-wide", g)
		}
	}
	var role rbacv1.Role
	for _, o := range objs {
		if o.GetKind() == "Role" && o.GetName() == "kthena-router" && o.GetNamespace() == "models" {
			into(t, o, &role)
		}
	}
	if !grants(role.Rules)[grant{"", "pods", "watch"}] {
		t.Errorf("router Role in models: %+v", role.Rules)
	}
}

// TestDeployments: the pods run hardened, their probes and Services point at
// ports the containers declare, every flag the chart passes is one the
// binary defines, and PDBs and spread constraints select the pods.
// Extra volumes reach the router pod, mounted in its container (a model's
// tokenizer files for kvcache-aware).
func TestRouterExtraVolumes(t *testing.T) {
	objs := render(t, "networking.router.extraVolumes[0].name=tok", "networking.router.extraVolumes[0].configMap.name=llama-tokenizer",
		"networking.router.extraVolumeMounts[0].name=tok", "networking.router.extraVolumeMounts[0].mountPath=/models/llama")
	var d appsv1.Deployment
	into(t, find(objs, "Deployment", "kthena-router"), &d)
	pod := d.Spec.Template.Spec
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == "tok" && v.ConfigMap != nil && v.ConfigMap.Name == "llama-tokenizer"
	}) {
		t.Errorf("volumes %+v lack the extra one", pod.Volumes)
	}
	if !slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "tok" && m.MountPath == "/models/llama" }) {
		t.Errorf("mounts %+v lack the extra one", pod.Containers[0].VolumeMounts)
	}
}

func TestDeployments(t *testing.T) {
	for _, sets := range [][]string{nil, {"certificates.mode=certManager", "networking.router.tls.secretName=router-tls", "networking.router.watchNamespace=models"}} {
		objs := render(t, sets...)
		for _, name := range []string{"kthena-controller-manager", "kthena-router"} {
			var d appsv1.Deployment
			into(t, find(objs, "Deployment", name), &d)
			pod := d.Spec.Template.Spec
			sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: selector does not match the pod labels", name)
			}
			if pod.SecurityContext == nil || !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) {
				t.Errorf("%s: not runAsNonRoot", name)
			}
			c := pod.Containers[0]
			sc := c.SecurityContext
			if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s: security context %+v", name, sc)
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || !ports[p.HTTPGet.Port.StrVal] {
					t.Errorf("%s: probe %+v not on a declared port", name, p)
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: resources %+v", name, c.Resources)
			}
			for _, tsc := range pod.TopologySpreadConstraints {
				s, err := metav1LabelSelector(tsc)
				if err != nil || !s.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s: spread constraint does not select the pods: %+v", name, tsc)
				}
			}
			var pdb policyv1.PodDisruptionBudget
			into(t, find(objs, "PodDisruptionBudget", name), &pdb)
			if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: PDB does not select the pods", name)
			}
			if err := parseFlags(name, c.Args); err != nil {
				t.Errorf("%v: %s: %v", sets, name, err)
			}
		}
		for _, o := range objs {
			if o.GetKind() != "Service" {
				continue
			}
			var s corev1.Service
			into(t, o, &s)
			owner := "kthena-router"
			if strings.HasPrefix(s.Name, "kthena-controller-manager") {
				owner = "kthena-controller-manager"
			}
			var d appsv1.Deployment
			into(t, find(objs, "Deployment", owner), &d)
			declared := map[string]bool{}
			for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
				declared[p.Name] = true
			}
			for _, p := range s.Spec.Ports {
				if !declared[p.TargetPort.StrVal] {
					t.Errorf("Service %s targets undeclared port %q", s.Name, p.TargetPort.StrVal)
				}
			}
		}
	}
}

func metav1LabelSelector(tsc corev1.TopologySpreadConstraint) (labels.Selector, error) {
	if tsc.LabelSelector == nil {
		return labels.Nothing(), nil
	}
	return labels.SelectorFromSet(tsc.LabelSelector.MatchLabels), nil
}

// parseFlags parses args with the flag set of the binary, as its main does.
func parseFlags(binary string, args []string) error {
	fs := pflag.NewFlagSet(binary, pflag.ContinueOnError)
	goFlags := flag.NewFlagSet("go", flag.ContinueOnError)
	goFlags.String("kubeconfig", "", "")
	switch binary {
	case "kthena-controller-manager":
		o := controllermanager.DefaultOptions()
		o.AddFlags(fs)
		(&zap.Options{}).BindFlags(goFlags)
		fs.AddGoFlagSet(goFlags)
		if err := fs.Parse(args); err != nil {
			return err
		}
		return o.Validate()
	case "kthena-router":
		var o runner.Options
		o.BindFlags(goFlags)
		fs.AddGoFlagSet(goFlags)
		// Flags cmd/kthena-router/main.go adds itself.
		fs.Bool("enable-webhook", true, "")
		fs.String("watch-namespace", "", "")
		fs.Float32("kube-api-qps", 50, "")
		fs.Int("kube-api-burst", 100, "")
		var wh kthenawebhook.ServingOptions
		wh.AddFlags(fs, "kthena-router-webhook-certs")
		return fs.Parse(args)
	}
	return nil
}
