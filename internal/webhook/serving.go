package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/kthena/kthena/internal/webhook/certs"
)

// ServingOptions say where a binary serves its webhooks and where the
// serving certificate comes from: files given by the operator, or a
// certificate the binary issues, stores in a Secret and renews itself.
type ServingOptions struct {
	Host    string
	Port    int
	CertDir string
	// SecretNamespace/SecretName hold the self-managed certificate.
	SecretNamespace string
	SecretName      string
	// CertHosts are the DNS names and IPs the self-managed certificate covers.
	CertHosts []string
}

// AddFlags registers the options' flags.
func (o *ServingOptions) AddFlags(fs *pflag.FlagSet, defaultSecret string) {
	fs.StringVar(&o.Host, "webhook-host", "", "Address the webhook server listens on (empty: all).")
	fs.IntVar(&o.Port, "webhook-port", 8443, "Port of the webhook server.")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "kthena-webhook-certs"),
		"Directory the webhook server reads tls.crt and tls.key from.")
	fs.StringVar(&o.SecretNamespace, "webhook-cert-secret-namespace", "kthena-system", "Namespace of the self-managed certificate's Secret.")
	fs.StringVar(&o.SecretName, "webhook-cert-secret", defaultSecret, "Name of the self-managed certificate's Secret.")
	fs.StringSliceVar(&o.CertHosts, "webhook-cert-hosts", nil, "When set, the binary issues its own certificate for these DNS names and IPs, keeps it in --webhook-cert-secret, renews it and injects its CA into the webhook configurations; when empty, --webhook-cert-dir must hold a provided certificate.")
}

// Server returns the webhook server for a manager.
func (o *ServingOptions) Server() webhook.Server {
	return webhook.NewServer(webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir})
}

// Certificates makes sure the serving certificate exists before the server
// starts. Without CertHosts the operator provides tls.crt and tls.key in
// CertDir (for example from cert-manager) and it returns nil. With CertHosts
// it issues or loads the self-managed certificate, points the group's webhook
// configurations at its CA, and returns the runnable that renews it.
func (o *ServingOptions) Certificates(ctx context.Context, c client.Client, group Group) (manager.Runnable, error) {
	if len(o.CertHosts) == 0 {
		for _, f := range []string{certs.CertKey, certs.KeyKey} {
			if _, err := os.Stat(filepath.Join(o.CertDir, f)); err != nil {
				return nil, fmt.Errorf("webhook certificate: %w (provide tls.crt and tls.key, or set --webhook-cert-hosts to have one issued)", err)
			}
		}
		return nil, nil
	}
	v, m, err := Configurations(group, URLClientConfig("https://unused", nil))
	if err != nil {
		return nil, err
	}
	mgr := &certs.Manager{
		Client:             c,
		Secret:             types.NamespacedName{Namespace: o.SecretNamespace, Name: o.SecretName},
		CertDir:            o.CertDir,
		Hosts:              o.CertHosts,
		ValidatingWebhooks: []string{v.Name},
		MutatingWebhooks:   []string{m.Name},
	}
	if err := mgr.Sync(ctx); err != nil {
		return nil, err
	}
	return mgr, nil
}
