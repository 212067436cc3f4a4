package controllermanager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/kthena/kthena/internal/controller/workload/plugins"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

// WebhookOptions configure the workload admission webhooks: where they are
// served and where the certificate comes from (kthenawebhook.ServingOptions),
// plus the Service whose DNS names a self-issued certificate covers.
type WebhookOptions struct {
	Enable bool
	kthenawebhook.ServingOptions
	// ServiceName and Namespace give the default certificate hosts when
	// neither provided files nor --webhook-cert-hosts are set.
	ServiceName string
	Namespace   string
}

func defaultWebhookOptions() WebhookOptions {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kthena-system"
	}
	return WebhookOptions{
		Enable: true,
		ServingOptions: kthenawebhook.ServingOptions{
			Port:            8443,
			CertDir:         filepath.Join(os.TempDir(), "kthena-controller-manager", "serving-certs"),
			SecretNamespace: ns,
			SecretName:      "kthena-controller-manager-webhook-certs",
		},
		ServiceName: "kthena-controller-manager-webhook",
		Namespace:   ns,
	}
}

func (o *WebhookOptions) addFlags(fs *pflag.FlagSet) {
	o.ServingOptions.AddFlags(fs, o.SecretName)
	fs.BoolVar(&o.Enable, "enable-webhook", o.Enable, "Serve the workload admission webhooks.")
	// Upstream Kthena's names for the provided certificate and the Secret.
	fs.StringVar(&o.CertFile, "tls-cert-file", o.CertFile, "Alias of --webhook-tls-cert-file.")
	fs.StringVar(&o.KeyFile, "tls-private-key-file", o.KeyFile, "Alias of --webhook-tls-private-key-file.")
	fs.StringVar(&o.SecretName, "cert-secret-name", o.SecretName, "Alias of --webhook-cert-secret.")
	fs.StringVar(&o.ServiceName, "webhook-service-name", o.ServiceName, "Service in front of the webhook server; without provided files or --webhook-cert-hosts, a certificate is issued for its DNS names.")
	fs.StringVar(&o.Namespace, "webhook-namespace", o.Namespace, "Namespace of the webhook Service (default $POD_NAMESPACE).")
}

// webhookServer returns the server options for the manager, or nil.
func (o *WebhookOptions) webhookServer() webhook.Server {
	if !o.Enable {
		return nil
	}
	return o.Server()
}

// setupWebhooks registers the workload webhooks and, without provided
// certificates, prepares and keeps renewing a self-issued one.
func (o *WebhookOptions) setupWebhooks(ctx context.Context, cfg *rest.Config, mgr ctrl.Manager, registry *plugins.Registry) error {
	if !o.Enable {
		return nil
	}
	serving := o.ServingOptions
	if serving.CertFile == "" && serving.KeyFile == "" && len(serving.CertHosts) == 0 {
		svc, ns := o.ServiceName, o.Namespace
		serving.CertHosts = []string{svc, svc + "." + ns, svc + "." + ns + ".svc"}
	}
	direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	renew, err := serving.Certificates(ctx, direct, kthenawebhook.WorkloadGroup)
	if err != nil {
		return fmt.Errorf("preparing the webhook certificate: %w", err)
	}
	if renew != nil {
		if err := mgr.Add(renew); err != nil {
			return err
		}
	}
	return kthenawebhook.SetupWorkload(mgr, kthenawebhook.WorkloadOptions{
		ModelServingPlugins: sets.New(registry.Names()...),
	})
}
