// Package controller tests the ModelServing controller against a real
// kube-apiserver and etcd. There is no kubelet: a fake kubelet in the test
// sets pod status the way a real one would. There is no garbage collector
// either, so deletion tests check what the controller itself deletes.
package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/testing/controlplane"
)

var env *controlplane.Env

func TestMain(m *testing.M) {
	if os.Getenv("KTHENA_TEST_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	}
	var err error
	env, err = controlplane.Start(controlplane.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{controlplane.RepoRoot()}, parts...)...)
}

// newNamespace creates a namespace unique to the test.
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

// writeCounter counts the API writes a manager's client makes.
type writeCounter struct{ n atomic.Int64 }

func (w *writeCounter) Load() int64 { return w.n.Load() }

func (w *writeCounter) newClient(config *rest.Config, options client.Options) (client.Client, error) {
	c, err := client.NewWithWatch(config, options)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.n.Add(1)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.n.Add(1)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			w.n.Add(1)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.n.Add(1)
			return c.Delete(ctx, obj, opts...)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			w.n.Add(1)
			return c.DeleteAllOf(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			w.n.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			w.n.Add(1)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			w.n.Add(1)
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
	}), nil
}

// manager is a running controller-manager limited to one namespace.
type manager struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	writes *writeCounter
}

// stop stops the manager and waits for it; it may be called more than once.
func (m *manager) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case <-m.done:
		if m.err != nil {
			t.Errorf("manager: %v", m.err)
		}
	case <-time.After(30 * time.Second):
		t.Error("manager did not stop")
	}
}

// startManager runs the controller-manager for ns until the test ends.
func startManager(t *testing.T, ns string) *manager {
	t.Helper()
	return startManagerWith(t, ns, controllermanager.Extra{})
}

// startManagerWith is startManager with extra settings.
func startManagerWith(t *testing.T, ns string, extra controllermanager.Extra) *manager {
	t.Helper()
	opts := controllermanager.DefaultOptions()
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.WatchNamespaces = []string{ns}
	opts.Workers = 2
	opts.Webhook.Enable = false
	wc := &writeCounter{}
	extra.NewClient, extra.SkipNameValidation = wc.newClient, true
	mgr, err := controllermanager.NewManager(context.Background(), env.Config, opts, extra)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &manager{cancel: cancel, done: make(chan struct{}), writes: wc}
	go func() { m.err = mgr.Start(ctx); close(m.done) }()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
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

func listPods(t *testing.T, ns string, sel map[string]string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels(sel)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func podNames(pods []corev1.Pod) []string {
	out := make([]string, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return sortStrings(out)
}

func getMS(t *testing.T, ns, name string) *workloadv1alpha1.ModelServing {
	t.Helper()
	ms := &workloadv1alpha1.ModelServing{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// updateMS applies mutate to the latest ModelServing, retrying on conflicts.
func updateMS(t *testing.T, ns, name string, mutate func(*workloadv1alpha1.ModelServing)) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		ms := getMS(t, ns, name)
		mutate(ms)
		return env.Client.Update(context.Background(), ms)
	})
}
