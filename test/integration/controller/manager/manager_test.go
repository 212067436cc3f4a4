// Package manager tests kthena-controller-manager as a whole against a real
// API server with admission webhooks: flags become a manager that serves
// the webhooks, probes and metrics, elects a leader and runs the controllers.
package manager

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/testing/controlplane"
	"github.com/kthena/kthena/test/wrappers"
)

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(body), nil
}

func TestControllerManager(t *testing.T) {
	ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	env, err := controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	opts := controllermanager.DefaultOptions()
	opts.MetricsBindAddress = freeAddr(t)
	opts.HealthProbeBindAddress = freeAddr(t)
	opts.LeaderElect = true
	opts.LeaderElectionNamespace = "default"
	opts.Controllers = []string{"*"}
	opts.Webhook.Host = env.WebhookHost()
	opts.Webhook.Port = env.WebhookPort()
	opts.Webhook.CertFile = filepath.Join(env.WebhookCertDir(), "tls.crt")
	opts.Webhook.KeyFile = filepath.Join(env.WebhookCertDir(), "tls.key")
	if _, err := os.Stat(opts.Webhook.CertFile); err != nil {
		t.Fatal(err)
	}
	mgr, err := controllermanager.NewManager(ctx, env.Config, opts, controllermanager.Extra{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() { cancel(); <-done }()

	// Probes and metrics.
	eventually(t, 30*time.Second, func() error {
		for _, p := range []string{"/healthz", "/readyz"} {
			if _, err := get("http://" + opts.HealthProbeBindAddress + p); err != nil {
				return err
			}
		}
		return nil
	})

	// Leader election holds the Lease.
	eventually(t, 30*time.Second, func() error {
		var lease coordinationv1.Lease
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: controllermanager.LeaderElectionID}, &lease); err != nil {
			return err
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			return fmt.Errorf("lease has no holder")
		}
		return nil
	})

	// The ModelServing webhook rejects what only it checks: a role budget
	// without RoleRollingUpdate.
	bad := wrappers.MakeModelServing("default", "bad").Role(wrappers.MakeRole("r").MaxUnavailable(intstr.FromInt32(1)).Obj()).Obj()
	eventually(t, 30*time.Second, func() error {
		err := env.Client.Create(ctx, bad)
		if err == nil {
			_ = env.Client.Delete(ctx, bad)
			return fmt.Errorf("invalid ModelServing accepted")
		}
		if !strings.Contains(err.Error(), "RoleRollingUpdate") {
			return fmt.Errorf("unexpected error: %v", err)
		}
		return nil
	})

	// The controller runs: a valid ModelServing gets its pod.
	good := wrappers.MakeModelServing("default", "good").Role(wrappers.MakeRole("r").Obj()).Obj()
	if err := env.Client.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		var p corev1.Pod
		return env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "good-0-r-0-0"}, &p)
	})
	eventually(t, 10*time.Second, func() error {
		body, err := get("http://" + opts.MetricsBindAddress + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="modelserving"`) {
			return fmt.Errorf("no modelserving reconcile metrics")
		}
		return nil
	})
}

func TestControllersFlag(t *testing.T) {
	for _, bad := range [][]string{{"nope"}, {"*", "-nope"}} {
		opts := controllermanager.DefaultOptions()
		opts.Controllers = bad
		if err := opts.Validate(); err == nil {
			t.Errorf("--controllers=%v accepted", bad)
		}
	}
	opts := controllermanager.DefaultOptions()
	opts.Workers = 0
	if err := opts.Validate(); err == nil {
		t.Error("--workers=0 accepted")
	}
}
