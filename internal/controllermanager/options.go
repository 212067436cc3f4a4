// Package controllermanager runs Kthena's controllers: it turns flags into
// options, options into a controller-runtime manager, and starts the
// controllers selected with --controllers.
package controllermanager

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/kthena/kthena/internal/controller/modelbooster"
)

// Options are the process settings of kthena-controller-manager.
type Options struct {
	// Controllers selects controllers: "*", "name", "+name", "-name".
	Controllers []string
	// Workers is the number of concurrent reconciles per controller.
	Workers int
	// MetricsBindAddress serves Prometheus metrics; "0" turns it off.
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz; "0" turns it off.
	HealthProbeBindAddress string
	// LeaderElect makes replicas elect one active manager through a Lease.
	LeaderElect bool
	// LeaderElectionNamespace holds the Lease (default: the pod's namespace).
	LeaderElectionNamespace string
	LeaseDuration           time.Duration
	RenewDeadline           time.Duration
	RetryPeriod             time.Duration
	// KubeAPIQPS and KubeAPIBurst limit the client.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// WatchNamespaces limits the controllers to these namespaces (all if empty).
	WatchNamespaces []string
	// Webhook configures the admission webhooks.
	Webhook WebhookOptions
	// AutoscalingSyncPeriod is how often the autoscalingpolicy controller
	// evaluates each policy.
	AutoscalingSyncPeriod time.Duration
	// ModelBoosterDownloaderImage runs the init container that downloads a
	// ModelBooster's modelURI into its cache.
	ModelBoosterDownloaderImage string
}

// LeaderElectionID is the name of the Lease the managers compete for.
const LeaderElectionID = "lease.kthena.controller-manager"

// DefaultOptions returns the defaults of every option.
func DefaultOptions() Options {
	return Options{
		Controllers:            []string{"*"},
		Workers:                5,
		MetricsBindAddress:     ":8080",
		HealthProbeBindAddress: ":8081",
		LeaseDuration:          15 * time.Second,
		RenewDeadline:          10 * time.Second,
		RetryPeriod:            2 * time.Second,
		KubeAPIQPS:             100,
		KubeAPIBurst:           200,
		Webhook:                defaultWebhookOptions(),
		AutoscalingSyncPeriod:  15 * time.Second,

		ModelBoosterDownloaderImage: modelbooster.DefaultDownloaderImage,
	}
}

// AddFlags binds the options to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Controllers, "controllers", o.Controllers,
		fmt.Sprintf("Controllers to run: '*' for all on by default, 'name' or '+name' to enable, '-name' to disable (known: %v).", knownControllerNames()))
	fs.IntVar(&o.Workers, "workers", o.Workers, "Concurrent reconciles per controller.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "Address of the Prometheus metrics endpoint; '0' disables it.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress, "Address of /healthz and /readyz; '0' disables them.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "Elect one active manager among replicas through the Lease "+LeaderElectionID+".")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-elect-namespace", o.LeaderElectionNamespace, "Namespace of the leader-election Lease (default: the pod's namespace).")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", o.LeaseDuration, "Leader-election lease duration.")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", o.RenewDeadline, "Leader-election renew deadline.")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", o.RetryPeriod, "Leader-election retry period.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second to the API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries to the API server.")
	fs.StringSliceVar(&o.WatchNamespaces, "watch-namespaces", o.WatchNamespaces, "Namespaces to reconcile (default: all).")
	fs.DurationVar(&o.AutoscalingSyncPeriod, "autoscaling-sync-period", o.AutoscalingSyncPeriod, "How often the autoscalingpolicy controller evaluates each AutoscalingPolicy.")
	fs.StringVar(&o.ModelBoosterDownloaderImage, "modelbooster-downloader-image", o.ModelBoosterDownloaderImage,
		"Image of the init container that downloads a ModelBooster's modelURI (CLI: --source URI --output-dir DIR).")
	o.Webhook.addFlags(fs)
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", o.Workers)
	}
	if o.AutoscalingSyncPeriod <= 0 {
		return fmt.Errorf("--autoscaling-sync-period must be positive, got %v", o.AutoscalingSyncPeriod)
	}
	if o.ModelBoosterDownloaderImage == "" {
		return fmt.Errorf("--modelbooster-downloader-image must not be empty")
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		return fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive")
	}
	if o.LeaderElect && !(o.LeaseDuration > o.RenewDeadline && o.RenewDeadline > o.RetryPeriod && o.RetryPeriod > 0) {
		return fmt.Errorf("leader election needs lease duration > renew deadline > retry period > 0")
	}
	_, err := enabledControllers(o.Controllers, knownControllers)
	return err
}
