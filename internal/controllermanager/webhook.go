package controllermanager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/kthena/kthena/internal/controller/workload/plugins"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
	"github.com/kthena/kthena/internal/webhook/certs"
)

// WebhookOptions configure the admission webhook server.
type WebhookOptions struct {
	Enable bool
	// Host is the address to listen on ("" = all interfaces).
	Host string
	Port int
	// CertDir holds tls.crt and tls.key. With TLSCertFile/TLSKeyFile unset,
	// the certificate is generated into CertSecretName and written here.
	CertDir     string
	TLSCertFile string
	TLSKeyFile  string
	// CertSecretName, ServiceName and Namespace locate the generated certificate.
	CertSecretName string
	ServiceName    string
	Namespace      string
	// ValidatingConfiguration and MutatingConfiguration get the CA bundle.
	ValidatingConfiguration string
	MutatingConfiguration   string
}

func defaultWebhookOptions() WebhookOptions {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kthena-system"
	}
	return WebhookOptions{
		Enable:                  true,
		Port:                    8443,
		CertDir:                 filepath.Join(os.TempDir(), "kthena-controller-manager", "serving-certs"),
		CertSecretName:          "kthena-controller-manager-webhook-certs",
		ServiceName:             "kthena-controller-manager-webhook",
		Namespace:               ns,
		ValidatingConfiguration: "kthena-controller-manager-validating-webhook",
		MutatingConfiguration:   "kthena-controller-manager-mutating-webhook",
	}
}

func (o *WebhookOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enable, "enable-webhook", o.Enable, "Serve the workload admission webhooks.")
	fs.StringVar(&o.Host, "webhook-host", o.Host, "Address the webhook server listens on (default: all interfaces).")
	fs.IntVar(&o.Port, "webhook-port", o.Port, "Port of the webhook server.")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", o.CertDir, "Directory the webhook server reads tls.crt and tls.key from.")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "Serving certificate; with --tls-private-key-file, no certificate is generated.")
	fs.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "Serving key; see --tls-cert-file.")
	fs.StringVar(&o.CertSecretName, "cert-secret-name", o.CertSecretName, "Secret that keeps the generated CA and serving certificate.")
	fs.StringVar(&o.ServiceName, "webhook-service-name", o.ServiceName, "Service in front of the webhook server (names in the certificate).")
	fs.StringVar(&o.Namespace, "webhook-namespace", o.Namespace, "Namespace of the webhook Service and certificate Secret (default $POD_NAMESPACE).")
	fs.StringVar(&o.ValidatingConfiguration, "validating-webhook-configuration", o.ValidatingConfiguration, "ValidatingWebhookConfiguration whose caBundle is kept current.")
	fs.StringVar(&o.MutatingConfiguration, "mutating-webhook-configuration", o.MutatingConfiguration, "MutatingWebhookConfiguration whose caBundle is kept current.")
}

// webhookServer returns the server options for the manager, or nil.
func (o *WebhookOptions) webhookServer() webhook.Server {
	if !o.Enable {
		return nil
	}
	opts := webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}
	if o.TLSCertFile != "" && o.TLSKeyFile != "" {
		opts.CertDir = filepath.Dir(o.TLSCertFile)
		opts.CertName = filepath.Base(o.TLSCertFile)
		opts.KeyName = filepath.Base(o.TLSKeyFile)
	}
	return webhook.NewServer(opts)
}

// setupWebhooks registers the workload webhooks and, without provided
// certificates, prepares and keeps renewing a generated one.
func (o *WebhookOptions) setupWebhooks(ctx context.Context, cfg *rest.Config, mgr ctrl.Manager, registry *plugins.Registry) error {
	if !o.Enable {
		return nil
	}
	if o.TLSCertFile == "" || o.TLSKeyFile == "" {
		direct, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		if err != nil {
			return err
		}
		svc := o.ServiceName
		cm := &certs.Manager{
			Client:             direct,
			Secret:             types.NamespacedName{Namespace: o.Namespace, Name: o.CertSecretName},
			CertDir:            o.CertDir,
			Hosts:              []string{svc, svc + "." + o.Namespace, svc + "." + o.Namespace + ".svc"},
			ValidatingWebhooks: []string{o.ValidatingConfiguration},
			MutatingWebhooks:   []string{o.MutatingConfiguration},
		}
		if err := cm.Sync(ctx); err != nil {
			return fmt.Errorf("preparing the webhook certificate: %w", err)
		}
		if err := mgr.Add(cm); err != nil {
			return err
		}
	}
	return kthenawebhook.SetupWorkload(mgr, kthenawebhook.WorkloadOptions{
		ModelServingPlugins: sets.New(registry.Names()...),
	})
}
