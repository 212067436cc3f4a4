package chart

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/router/provider/kubernetes"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/testing/controlplane"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

const ns = "kthena-system"

// TestInstall installs each plane as its own release into a real
// kube-apiserver (no kubelet: the pods never run), checks that every object
// was accepted and the CRDs are established, runs both binaries in this
// process as the chart's ServiceAccounts to prove the chart's RBAC is enough
// for them to start (caches, leader election, webhook certificates and CA
// injection), upgrades, and uninstalls.
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	dir, err := controlplane.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := controllermanager.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	// No Kthena CRDs: the chart installs them. Volcano's PodGroup is
	// installed as a cluster running Volcano has it (the ModelServing
	// controller watches PodGroups).
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		Scheme:                scheme,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths: []string{filepath.Join(controlplane.RepoRoot(), "test", "testdata", "crds", "volcano")}, ErrorIfPathMissing: true,
		},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "chart-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kube := func(args ...string) {
		t.Helper()
		if out, err := helm(append(args, "--kubeconfig", kubeconfig, "--namespace", ns)...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}

	planes := []struct {
		release string
		sets    []string
	}{
		{"kthena-workload", []string{"networking.enabled=false"}},
		{"kthena-networking", []string{"workload.enabled=false"}},
	}
	for i, p := range planes {
		args := []string{"install", p.release, chartDir}
		if i == 0 {
			args = append(args, "--create-namespace")
		}
		for _, s := range p.sets {
			args = append(args, "--set", s)
		}
		kube(args...)
		want := render(t, p.sets...)
		for _, o := range want {
			if err := c.Get(ctx, client.ObjectKeyFromObject(o), getter(o)); err != nil {
				t.Errorf("%s %s/%s after install: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
			if o.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, c, o.GetName())
			}
		}
	}

	t.Run("controller manager runs with the chart's RBAC", func(t *testing.T) {
		runControllerManager(t, cfg, c)
	})
	t.Run("router runs with the chart's RBAC", func(t *testing.T) {
		runRouter(t, cfg, c)
	})

	// An upgrade changes what it should and keeps the CA bundles the
	// binaries injected (Helm does not own them).
	kube("upgrade", planes[1].release, chartDir, "--set", "workload.enabled=false", "--set", "networking.router.replicas=3")
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kthena-router"}, &d); err != nil || *d.Spec.Replicas != 3 {
		t.Errorf("router after upgrade: replicas %v, %v", d.Spec.Replicas, err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "kthena-networking-validating"}, &vwc); err != nil || len(vwc.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("networking CA bundle lost by the upgrade (err %v)", err)
	}
	kube("upgrade", planes[0].release, chartDir, "--set", "networking.enabled=false", "--set", "workload.controllerManager.workers=8")

	// Uninstalling removes the planes but keeps the CRDs (crds.keep).
	kube("uninstall", planes[0].release)
	kube("uninstall", planes[1].release)
	for _, name := range []string{"kthena-controller-manager", "kthena-router"} {
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("deployment %s after uninstall: %v", name, err)
		}
	}
	for _, name := range []string{"modelservings.workload.serving.volcano.sh", "modelroutes.networking.serving.volcano.sh"} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
			t.Errorf("CRD %s not kept: %v", name, err)
		}
	}
	// Installing again under the same release name adopts the kept CRDs.
	kube("install", planes[1].release, chartDir, "--set", "workload.enabled=false")
}

func getter(o *unstructured.Unstructured) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(o.GroupVersionKind())
	return u
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &crd); err == nil {
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("CRD %s not established", name)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// as returns cfg acting as the ServiceAccount.
func as(cfg *rest.Config, serviceAccount string) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + serviceAccount,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return cfg
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// caInjected waits until every webhook of the group's configurations has a CA.
func caInjected(t *testing.T, c client.Client, group string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		var m admissionregistrationv1.MutatingWebhookConfiguration
		ok := c.Get(context.Background(), client.ObjectKey{Name: "kthena-" + group + "-validating"}, &v) == nil &&
			c.Get(context.Background(), client.ObjectKey{Name: "kthena-" + group + "-mutating"}, &m) == nil
		for _, w := range v.Webhooks {
			ok = ok && len(w.ClientConfig.CABundle) > 0
		}
		for _, w := range m.Webhooks {
			ok = ok && len(w.ClientConfig.CABundle) > 0
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s webhook configurations did not get a CA bundle", group)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runControllerManager starts the controller manager as the chart runs it
// (leader election, self-issued webhook certificate) but as its
// ServiceAccount, and waits until it leads and its caches synced.
func runControllerManager(t *testing.T, cfg *rest.Config, c client.Client) {
	o := controllermanager.DefaultOptions()
	o.MetricsBindAddress, o.HealthProbeBindAddress = "0", "0"
	o.LeaderElect, o.LeaderElectionNamespace = true, ns
	o.Webhook.Enable = true
	o.Webhook.Host, o.Webhook.Port, o.Webhook.CertDir = "127.0.0.1", freePort(t), t.TempDir()
	o.Webhook.SecretNamespace, o.Webhook.SecretName = ns, "kthena-controller-manager-webhook-certs"
	o.Webhook.ServiceName, o.Webhook.Namespace = "kthena-controller-manager-webhook", ns
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := controllermanager.NewManager(ctx, as(cfg, "kthena-controller-manager"), o, controllermanager.Extra{SkipNameValidation: true})
	if err != nil {
		t.Fatalf("controller manager as its ServiceAccount: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	}()
	select {
	case <-mgr.Elected():
	case err := <-done:
		t.Fatalf("controller manager stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("controller manager did not acquire the lease")
	}
	syncCtx, syncCancel := context.WithTimeout(ctx, 60*time.Second)
	defer syncCancel()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("controller manager caches did not sync")
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: controllermanager.LeaderElectionID}, &coordinationv1.Lease{}); err != nil {
		t.Errorf("lease: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kthena-controller-manager-webhook-certs"}, &corev1.Secret{}); err != nil {
		t.Errorf("webhook certificate secret: %v", err)
	}
	caInjected(t, c, "workload")
}

// runRouter starts the router in Kubernetes mode with a self-issued webhook
// certificate, as its ServiceAccount, and waits for /readyz.
func runRouter(t *testing.T, cfg *rest.Config, c client.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan error, 1)
	svc := "kthena-router-webhook"
	r, err := runner.Start(ctx, runner.Options{
		Addr: "127.0.0.1:0", Kubernetes: true, ScrapeInterval: time.Second,
		MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute,
		KubernetesProvider: kubernetes.New(kubernetes.Options{
			Config: as(cfg, "kthena-router"),
			Webhook: &kthenawebhook.ServingOptions{
				Host: "127.0.0.1", Port: freePort(t), CertDir: t.TempDir(),
				SecretNamespace: ns, SecretName: "kthena-router-webhook-certs",
				CertHosts: []string{svc, svc + "." + ns, svc + "." + ns + ".svc"},
			},
			OnExit: func(err error) { exited <- err },
		}),
	})
	if err != nil {
		t.Fatalf("router as its ServiceAccount: %v", err)
	}
	defer func() { _ = r.Shutdown(context.Background()) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + r.Addr() + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("router's Kubernetes provider stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("router not ready as its ServiceAccount (last status %v, %v)", statusOf(res), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kthena-router-webhook-certs"}, &corev1.Secret{}); err != nil {
		t.Errorf("webhook certificate secret: %v", err)
	}
	caInjected(t, c, "networking")
}

func statusOf(res *http.Response) string {
	if res == nil {
		return "none"
	}
	return strconv.Itoa(res.StatusCode)
}
