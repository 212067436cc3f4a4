// Package webhookserver serves Kthena's admission webhooks (both API
// groups) for a test control plane, the way the binaries serve them.
package webhookserver

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/testing/controlplane"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

// Serve starts a manager on env (started with Options.Webhooks) that serves
// the workload and networking webhooks until ctx ends, and returns once
// the API server reaches them.
func Serve(ctx context.Context, env *controlplane.Env) error {
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: env.WebhookHost(), Port: env.WebhookPort(), CertDir: env.WebhookCertDir(),
		}),
	})
	if err != nil {
		return err
	}
	if err := kthenawebhook.SetupWorkload(mgr, kthenawebhook.WorkloadOptions{}); err != nil {
		return err
	}
	if err := kthenawebhook.SetupNetworking(mgr); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			ctrl.Log.WithName("webhook-manager").Error(err, "stopped")
		}
	}()
	return waitReachable(ctx, env.Client)
}

// waitReachable dry-runs a valid ModelServer until admission answers.
func waitReachable(ctx context.Context, c client.Client) error {
	probe := &networkingv1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: "webhook-probe", Namespace: "default"},
		Spec: networkingv1alpha1.ModelServerSpec{
			InferenceEngine:  networkingv1alpha1.VLLM,
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": "probe"}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: 8000},
		},
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not answering: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
