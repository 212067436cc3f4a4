package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/kthena/kthena/internal/testing/controlplane"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// env is a real API server with Kthena's CRDs and admission webhooks; the
// commands under test talk to it through a kubeconfig file, as users do.
var env *controlplane.Env

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The commands read ~/.kube and write kubectl's discovery cache under
	// $HOME: keep both away from the user's.
	home, err := os.MkdirTemp("", "kthena-cli-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(home) }()
	_ = os.Setenv("HOME", home)
	_ = os.Unsetenv("KUBECONFIG")
	_ = os.Unsetenv("KTHENA_ROUTER_URL")

	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(1))))
	env, err = controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: env.WebhookHost(), Port: env.WebhookPort(), CertDir: env.WebhookCertDir(),
		}),
	})
	if err == nil {
		err = kthenawebhook.SetupWorkload(mgr, kthenawebhook.WorkloadOptions{})
	}
	if err == nil {
		err = kthenawebhook.SetupNetworking(mgr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	if err := waitForWebhooks(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// waitForWebhooks dry-runs an object until the webhook server answers.
func waitForWebhooks(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		obj := sample(nil, "networking_v1alpha1_modelserver.yaml")
		err := env.Client.Create(ctx, obj, client.DryRunAll)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not answering: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sample reads a manifest from config/samples.
func sample(t *testing.T, file string) *unstructured.Unstructured {
	data, err := os.ReadFile(filepath.Join(controlplane.RepoRoot(), "config", "samples", file))
	if err == nil {
		obj := &unstructured.Unstructured{}
		if err = yaml.Unmarshal(data, &obj.Object); err == nil {
			return obj
		}
	}
	if t != nil {
		t.Fatalf("reading sample %s: %v", file, err)
	}
	panic(err)
}

var samples = []string{
	"workload_v1alpha1_modelbooster.yaml", "workload_v1alpha1_modelserving.yaml", "workload_v1alpha1_autoscalingpolicy.yaml",
	"networking_v1alpha1_modelserver.yaml", "networking_v1alpha1_modelroute.yaml", "networking_v1alpha1_externalmodelprovider.yaml",
}

// namespace creates a namespace named name for one test.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// createSamples creates every sample in ns and returns them.
func createSamples(t *testing.T, ns string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range samples {
		obj := sample(t, f)
		obj.SetNamespace(ns)
		if err := env.Client.Create(context.Background(), obj); err != nil {
			t.Fatalf("creating %s: %v", f, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// kthena runs the CLI in-process, as main does, and returns its output and
// exit code.
func kthena(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Execute(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// kthenaOK runs the CLI with the test cluster's kubeconfig and fails the
// test unless it succeeds.
func kthenaOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := kthena(t, append(args, "--kubeconfig", env.Kubeconfig)...)
	if code != 0 {
		t.Fatalf("kthena %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// ages matches the relative times the API server and the CLI print (5s,
// 2m3s, 4h), which change from run to run.
var ages = regexp.MustCompile(`\b(\d+[smhdy])+\b`)

// golden compares got, its ages blanked, with testdata/<name>.golden.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = ages.ReplaceAllString(got, "<age>")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// oneLineError checks a failed run: exit code 1, nothing on stdout and a
// single "error: ..." line on stderr containing want.
func oneLineError(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := kthena(t, args...)
	if code == 0 {
		t.Fatalf("kthena %v succeeded, want an error", args)
	}
	if errOut == "" || bytes.Count([]byte(errOut), []byte("\n")) != 1 || !regexp.MustCompile(`^error: `).MatchString(errOut) {
		t.Errorf("kthena %v: stderr is not one error line:\n%s", args, errOut)
	}
	if !bytes.Contains([]byte(errOut), []byte(want)) {
		t.Errorf("kthena %v: error %q does not say %q", args, errOut, want)
	}
	if out != "" {
		t.Errorf("kthena %v: printed on stdout besides the error:\n%s", args, out)
	}
}
