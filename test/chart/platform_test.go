package chart

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kthena/kthena/internal/platform"
	"github.com/kthena/kthena/internal/testing/controlplane"
)

// lockedBuffer collects the platform's progress lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInstallOnLocalPlatform installs the chart into the local platform in
// control-plane-only mode, where the node agent runs the chart's images as
// our binaries: both Deployments become available, both webhooks refuse
// invalid objects through their Services, a model deployed afterwards
// answers through the chart's router Service, an upgrade rolls the router, and
// uninstalling removes the chart's namespaced objects.
func TestInstallOnLocalPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local platform")
	}
	assets, err := controlplane.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/kthena-controller-manager", "./cmd/kthena-router", "./cmd/kthena-sim")
	build.Dir = controlplane.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building binaries: %v\n%s", err, out)
	}
	state := t.TempDir()
	progress := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- platform.Run(ctx, platform.Options{StateDir: state, BinDir: bin, AssetsDir: assets, ControlPlaneOnly: true, Out: progress, Log: logr.Discard()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform: %v", err)
		}
	})
	waitFor(t, 2*time.Minute, "control plane ready", func() error {
		select {
		case err := <-done:
			t.Fatalf("platform ended: %v\n%s", err, progress.String())
		default:
		}
		if !strings.Contains(progress.String(), "control plane ready") {
			return fmt.Errorf("progress so far:\n%s", progress.String())
		}
		return nil
	})
	kubeconfig := filepath.Join(state, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: platform.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	helmArgs := func(args ...string) []string {
		return append(args, "--kubeconfig", kubeconfig, "--namespace", ns)
	}
	if out, err := helm(helmArgs("install", "kthena", chartDir, "--create-namespace", "--wait=false")...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	available := func(name string) func() error {
		return func() error {
			var d appsv1.Deployment
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
				return err
			}
			if d.Status.ObservedGeneration != d.Generation || d.Status.UpdatedReplicas != *d.Spec.Replicas ||
				d.Status.AvailableReplicas != *d.Spec.Replicas || d.Status.Replicas != *d.Spec.Replicas {
				return fmt.Errorf("deployment %s status %+v; platform:\n%s", name, d.Status, tail(progress.String(), 2000))
			}
			return nil
		}
	}
	waitFor(t, 2*time.Minute, "controller manager available", available("kthena-controller-manager"))
	waitFor(t, 2*time.Minute, "router available", available("kthena-router"))

	// Both webhooks answer through their Services.
	apply := func(doc string) error {
		u := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &u); err != nil {
			t.Fatal(err)
		}
		return c.Create(ctx, &unstructured.Unstructured{Object: u})
	}
	waitFor(t, time.Minute, "networking webhook refuses a bad regex", func() error {
		err := apply(`{apiVersion: networking.serving.volcano.sh/v1alpha1, kind: ModelRoute, metadata: {name: bad, namespace: default},
spec: {modelName: bad, rules: [{modelMatch: {headers: {x: {regex: "("}}}, targetModels: [{modelServerName: ms}]}]}}`)
		if err == nil || !strings.Contains(err.Error(), "not a valid RE2 regular expression") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	waitFor(t, time.Minute, "workload webhook refuses a bad role name", func() error {
		err := apply(`{apiVersion: workload.serving.volcano.sh/v1alpha1, kind: ModelServing, metadata: {name: bad, namespace: default},
spec: {replicas: 1, template: {roles: [{name: r, replicas: 1, workerReplicas: 0, entryTemplate: {spec: {containers: [{name: e, image: x}]}}}]},
  rolloutStrategy: {type: ServingGroupRollingUpdate, rollingUpdateConfiguration: {maxSurge: 0, maxUnavailable: 0}}}}`)
		if err == nil || !strings.Contains(err.Error(), "maxSurge") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})

	// A model deployed afterwards answers through the chart's router pod.
	for _, doc := range []string{
		`{apiVersion: workload.serving.volcano.sh/v1alpha1, kind: ModelServing, metadata: {name: m, namespace: default},
spec: {replicas: 1, template: {roles: [{name: engine, replicas: 1, workerReplicas: 0, entryTemplate: {metadata: {labels: {app: m}}, spec: {
  terminationGracePeriodSeconds: 2, containers: [{name: e, image: "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1", args: [--model, m, --port, "8000"],
  readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 1}}]}}}]}}}`,
		`{apiVersion: networking.serving.volcano.sh/v1alpha1, kind: ModelServer, metadata: {name: m, namespace: default},
spec: {model: m, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: m}}, workloadPort: {port: 8000}}}`,
		`{apiVersion: networking.serving.volcano.sh/v1alpha1, kind: ModelRoute, metadata: {name: m, namespace: default},
spec: {modelName: m, rules: [{targetModels: [{modelServerName: m}]}]}}`,
	} {
		if err := apply(doc); err != nil {
			t.Fatal(err)
		}
	}
	// Through the router's Service, as a client in a cluster would: the
	// platform's service proxy forwards its cluster IP to the router pod.
	chat := func() error {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kthena-router"}, &svc); err != nil {
			return err
		}
		res, err := http.Post("http://"+net.JoinHostPort(svc.Spec.ClusterIP, "80")+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hello"}],"max_tokens":4}`))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"choices"`) {
			return fmt.Errorf("%d %s", res.StatusCode, body)
		}
		return nil
	}
	waitFor(t, 2*time.Minute, "chat answered through the chart's router Service", chat)

	// An upgrade that changes the router's arguments rolls its pod.
	before := routerPods(t, c)[0].Name
	if out, err := helm(helmArgs("upgrade", "kthena", chartDir, "--set", "networking.router.scrapeInterval=2s")...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, 2*time.Minute, "router rolled by the upgrade", func() error {
		if err := available("kthena-router")(); err != nil {
			return err
		}
		if pods := routerPods(t, c); len(pods) != 1 || pods[0].Name == before {
			return fmt.Errorf("router pods %d, first %v (before %s)", len(pods), podNamesOf(pods), before)
		}
		return nil
	})
	waitFor(t, time.Minute, "chat answered after the upgrade", chat)

	// Uninstall: the chart's namespaced objects go (pods through the
	// garbage collector).
	if out, err := helm(helmArgs("uninstall", "kthena")...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, 2*time.Minute, "chart's objects removed", func() error {
		var left []string
		for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.ReplicaSetList{}, &corev1.PodList{}, &corev1.ServiceList{}, &corev1.ConfigMapList{}} {
			if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/name": "kthena"}); err != nil {
				return err
			}
			objs, err := meta.ExtractList(list)
			if err != nil {
				return err
			}
			for _, o := range objs {
				m, _ := meta.Accessor(o)
				left = append(left, fmt.Sprintf("%T %s", o, m.GetName()))
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %v", left)
		}
		return nil
	})
}

func routerPods(t *testing.T, c client.Client) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/component": "router"}); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

func podNamesOf(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
