// Package webhook registers Kthena's admission webhooks with a
// controller-runtime manager. The controller manager serves the workload
// group's webhooks and the router the networking group's, as upstream does.
package webhook

import (
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"

	networkingwebhook "github.com/kthena/kthena/internal/webhook/networking/v1alpha1"
	workloadwebhook "github.com/kthena/kthena/internal/webhook/workload/v1alpha1"
)

// WorkloadOptions configure the workload webhooks.
type WorkloadOptions struct {
	// ModelServingPlugins are the plugin names the controller has registered;
	// nil accepts any name.
	ModelServingPlugins sets.Set[string]
}

// SetupWorkload registers the ModelServing, ModelBooster and AutoscalingPolicy webhooks.
func SetupWorkload(mgr ctrl.Manager, opts WorkloadOptions) error {
	if err := workloadwebhook.SetupModelServingWebhook(mgr, opts.ModelServingPlugins); err != nil {
		return err
	}
	if err := workloadwebhook.SetupModelBoosterWebhook(mgr); err != nil {
		return err
	}
	return workloadwebhook.SetupAutoscalingPolicyWebhook(mgr)
}

// SetupNetworking registers the ModelRoute, ModelServer and ExternalModelProvider webhooks.
func SetupNetworking(mgr ctrl.Manager) error {
	if err := networkingwebhook.SetupModelRouteWebhook(mgr); err != nil {
		return err
	}
	if err := networkingwebhook.SetupModelServerWebhook(mgr); err != nil {
		return err
	}
	return networkingwebhook.SetupExternalModelProviderWebhook(mgr)
}
