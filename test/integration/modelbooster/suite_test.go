// Package modelbooster tests the ModelBooster controller against a real
// kube-apiserver and etcd, with the workload and networking admission
// webhooks served, and the ModelServing controller turning the generated
// ModelServing into pods. There is no kubelet (a fake one marks pods Ready)
// and no garbage collector: deletion cascades are checked through the owner
// references alone.
package modelbooster

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/testing/controlplane"
	"github.com/kthena/kthena/internal/testing/webhookserver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var env *controlplane.Env

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("KTHENA_TEST_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	}
	var err error
	env, err = controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := webhookserver.Serve(ctx, env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	name = strings.Trim(name[:min(40, len(name))], "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// startManager runs the default controllers (ModelServing, ModelBooster,
// AutoscalingPolicy), or the selection in controllers, for ns until the
// test ends.
func startManager(t *testing.T, ns string, controllers ...string) {
	t.Helper()
	opts := controllermanager.DefaultOptions()
	if len(controllers) > 0 {
		opts.Controllers = controllers
	}
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.WatchNamespaces = []string{ns}
	opts.Workers = 2
	opts.Webhook.Enable = false
	opts.ModelBoosterDownloaderImage = "example.com/downloader:test"
	mgr, err := controllermanager.NewManager(context.Background(), env.Config, opts, controllermanager.Extra{SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop")
		}
	})
}

// startKubelet marks every pod of ns Running and Ready until the test ends.
func startKubelet(t *testing.T, ns string) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var list corev1.PodList
			if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
				continue
			}
			for i := range list.Items {
				p := &list.Items[i]
				if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodRunning {
					continue
				}
				p.Status.Phase = corev1.PodRunning
				p.Status.PodIP = "127.0.0.1"
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
				_ = env.Client.Status().Update(ctx, p)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consistently checks that f keeps returning nil for d.
func consistently(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("condition broke: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
}

// exists is nil once ns/name of obj's kind exists.
func exists(ns, name string, obj client.Object) error {
	return env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// gone is nil once ns/name of obj's kind is not found.
func gone(ns, name string, obj client.Object) error {
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		return fmt.Errorf("%s still exists", name)
	}
	return err
}

// eventReasons lists the reasons of the events about a booster.
func eventReasons(t *testing.T, ns, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "ModelBooster" && e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func hasEvent(t *testing.T, ns, name, reason string) error {
	for _, r := range eventReasons(t, ns, name) {
		if r == reason {
			return nil
		}
	}
	return fmt.Errorf("no %s event on %s (have %v)", reason, name, eventReasons(t, ns, name))
}

// golden compares obj, with its server-assigned metadata cleared and the
// namespace and owner UID replaced by placeholders, with testdata/file.
func golden(t *testing.T, file string, objs ...client.Object) {
	t.Helper()
	var buf bytes.Buffer
	for i, obj := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		gvk, err := apiutilGVK(obj)
		if err != nil {
			t.Fatal(err)
		}
		u.SetAPIVersion(gvk.GroupVersion().String())
		u.SetKind(gvk.Kind)
		ns := u.GetNamespace()
		for _, f := range []string{"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "namespace"} {
			unstructured.RemoveNestedField(m, "metadata", f)
		}
		delete(m, "status")
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		owner := obj.GetOwnerReferences()
		if len(owner) > 0 {
			b = bytes.ReplaceAll(b, []byte(owner[0].UID), []byte("BOOSTER-UID"))
		}
		b = bytes.ReplaceAll(b, []byte(ns), []byte("NAMESPACE"))
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(y)
	}
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("%s differs from the generated objects (run with -update to accept):\n--- want\n%s\n--- got\n%s", path, want, buf.Bytes())
	}
}

func condition(mb *workloadv1alpha1.ModelBooster, typ string) *metav1.Condition {
	for i := range mb.Status.Conditions {
		if mb.Status.Conditions[i].Type == typ {
			return &mb.Status.Conditions[i]
		}
	}
	return nil
}

// wantCondition is nil once the booster's condition typ has status s.
func wantCondition(ns, name, typ string, s metav1.ConditionStatus) error {
	mb := &workloadv1alpha1.ModelBooster{}
	if err := exists(ns, name, mb); err != nil {
		return err
	}
	c := condition(mb, typ)
	if c == nil || c.Status != s {
		return fmt.Errorf("%s condition %s: %+v, want %s", name, typ, c, s)
	}
	if mb.Status.ObservedGeneration != mb.Generation {
		return fmt.Errorf("observedGeneration %d, generation %d", mb.Status.ObservedGeneration, mb.Generation)
	}
	return nil
}

// updateBooster changes a booster, retrying on conflicts with the
// controller's status writes.
func updateBooster(t *testing.T, ns, name string, change func(*workloadv1alpha1.ModelBooster)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mb := &workloadv1alpha1.ModelBooster{}
		if err := exists(ns, name, mb); err != nil {
			return err
		}
		change(mb)
		return env.Client.Update(context.Background(), mb)
	})
	if err != nil {
		t.Fatal(err)
	}
}
