package controllermanager

import (
	"context"
	"fmt"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/internal/controller/modelbooster"
	"github.com/kthena/kthena/internal/controller/workload"
	"github.com/kthena/kthena/internal/controller/workload/plugins"
)

// controllerSetup registers one controller with the manager.
type controllerSetup func(mgr ctrl.Manager, o *Options, extra *Extra) error

// knownControllers maps each controller to whether "*" enables it.
var knownControllers = map[string]bool{workload.ControllerName: true, autoscaling.ControllerName: true, modelbooster.ControllerName: true}

func knownControllerNames() []string { return sortedKeys(knownControllers) }

func setups() map[string]controllerSetup {
	return map[string]controllerSetup{
		workload.ControllerName: func(mgr ctrl.Manager, o *Options, extra *Extra) error {
			return (&workload.Reconciler{Plugins: extra.Plugins}).SetupWithManager(mgr, o.Workers)
		},
		autoscaling.ControllerName: func(mgr ctrl.Manager, o *Options, _ *Extra) error {
			return (&autoscaling.Reconciler{SyncPeriod: o.AutoscalingSyncPeriod}).SetupWithManager(mgr, o.Workers)
		},
		modelbooster.ControllerName: func(mgr ctrl.Manager, o *Options, _ *Extra) error {
			return (&modelbooster.Reconciler{Options: modelbooster.Options{DownloaderImage: o.ModelBoosterDownloaderImage}}).SetupWithManager(mgr, o.Workers)
		},
	}
}

// NewScheme returns the scheme of every kind the controllers use.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, volcanov1beta1.AddToScheme,
		workloadv1alpha1.AddToScheme, networkingv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Extra lets callers (tests, benchmarks) adjust the manager before it is built.
type Extra struct {
	// NewClient replaces the manager's client constructor (e.g. to count writes).
	NewClient client.NewClientFunc
	// SkipNameValidation allows several managers in one process (tests).
	SkipNameValidation bool
	// Plugins replaces the ModelServing plugin registry (default: the built-ins).
	Plugins *plugins.Registry
}

// Permissions of the manager itself (leader election, webhook certificates).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations;mutatingwebhookconfigurations,verbs=get;update;patch

// NewManager builds a manager with the selected controllers registered.
func NewManager(ctx context.Context, cfg *rest.Config, o Options, extra Extra) (ctrl.Manager, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	enabled, err := enabledControllers(o.Controllers, knownControllers)
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	cacheOpts := workload.CacheOptions()
	if len(o.WatchNamespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.WatchNamespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	leaseDuration, renewDeadline, retryPeriod := o.LeaseDuration, o.RenewDeadline, o.RetryPeriod
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   cacheOpts,
		NewClient:               extra.NewClient,
		WebhookServer:           o.Webhook.webhookServer(),
		Controller:              config.Controller{SkipNameValidation: ptr.To(extra.SkipNameValidation)},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		LeaseDuration:           &leaseDuration,
		RenewDeadline:           &renewDeadline,
		RetryPeriod:             &retryPeriod,
		// Leave the Lease on shutdown so a successor takes over at once.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if extra.Plugins == nil {
		extra.Plugins = plugins.NewBuiltInRegistry()
	}
	if err := o.Webhook.setupWebhooks(ctx, cfg, mgr, extra.Plugins); err != nil {
		return nil, fmt.Errorf("setting up webhooks: %w", err)
	}
	all := setups()
	for _, name := range sortedKeys(enabled) {
		if err := all[name](mgr, &o, &extra); err != nil {
			return nil, fmt.Errorf("setting up controller %s: %w", name, err)
		}
	}
	return mgr, nil
}

// Run builds the manager for cfg and runs it until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	mgr, err := NewManager(ctx, cfg, o, Extra{})
	if err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("starting kthena-controller-manager", "controllers", o.Controllers, "leaderElect", o.LeaderElect)
	return mgr.Start(ctx)
}
