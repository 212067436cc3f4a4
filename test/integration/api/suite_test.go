// Package api tests the Kthena API as a user meets it: CRDs, CEL rules and
// admission webhooks installed in a real kube-apiserver, driven by manifests.
package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
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

var env *controlplane.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	var err error
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

func zapLevel() int8 {
	if os.Getenv("KTHENA_TEST_VERBOSE") != "" {
		return -2
	}
	return 1 // errors and warnings only
}

// waitForWebhooks creates a throwaway object until the webhook server answers.
func waitForWebhooks(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		obj := sample(nil, "networking_v1alpha1_modelserver.yaml")
		obj.SetName("webhook-probe")
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
