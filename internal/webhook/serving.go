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
	// CertFile and KeyFile, when set, name a provided key pair anywhere on
	// disk (for example a mounted cert-manager Secret); CertDir is then unused.
	CertFile string
	KeyFile  string
	// SecretNamespace/SecretName hold the self-managed certificate.
	SecretNamespace string
	SecretName      string
	// CertHosts are the DNS names and IPs the self-managed certificate covers.
	CertHosts []string
}

// AddFlags registers the options' flags. Fields already set are the flags'
// defaults; unset ones default to port 8443, a directory under the system's
// temporary directory, namespace kthena-system and defaultSecret.
func (o *ServingOptions) AddFlags(fs *pflag.FlagSet, defaultSecret string) {
	if o.Port == 0 {
		o.Port = 8443
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(os.TempDir(), "kthena-webhook-certs")
	}
	if o.SecretNamespace == "" {
		o.SecretNamespace = "kthena-system"
	}
	if o.SecretName == "" {
		o.SecretName = defaultSecret
	}
	fs.StringVar(&o.Host, "webhook-host", o.Host, "Address the webhook server listens on (empty: all).")
	fs.IntVar(&o.Port, "webhook-port", o.Port, "Port of the webhook server.")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", o.CertDir, "Directory the webhook server reads tls.crt and tls.key from.")
	fs.StringVar(&o.CertFile, "webhook-tls-cert-file", o.CertFile, "Provided serving certificate; with --webhook-tls-private-key-file it is used as given and nothing is issued.")
	fs.StringVar(&o.KeyFile, "webhook-tls-private-key-file", o.KeyFile, "Provided serving key; see --webhook-tls-cert-file.")
	fs.StringVar(&o.SecretNamespace, "webhook-cert-secret-namespace", o.SecretNamespace, "Namespace of the self-issued certificate's Secret.")
	fs.StringVar(&o.SecretName, "webhook-cert-secret", o.SecretName, "Name of the self-issued certificate's Secret.")
	fs.StringSliceVar(&o.CertHosts, "webhook-cert-hosts", o.CertHosts, "DNS names and IPs to issue a certificate for: the binary keeps it in --webhook-cert-secret, renews it and injects its CA into the webhook configurations.")
}

// Server returns the webhook server for a manager.
func (o *ServingOptions) Server() webhook.Server {
	opts := webhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}
	if o.CertFile != "" {
		opts.CertDir = filepath.Dir(o.CertFile)
		opts.CertName = filepath.Base(o.CertFile)
		opts.KeyName = filepath.Base(o.KeyFile)
	}
	return webhook.NewServer(opts)
}

// Certificates makes sure the serving certificate exists before the server
// starts. With CertFile and KeyFile it checks they exist and returns nil.
// Without CertHosts the operator provides tls.crt and tls.key in
// CertDir (for example from cert-manager) and it returns nil. With CertHosts
// it issues or loads the self-managed certificate, points the group's webhook
// configurations at its CA, and returns the runnable that renews it.
func (o *ServingOptions) Certificates(ctx context.Context, c client.Client, group Group) (manager.Runnable, error) {
	if o.CertFile != "" || o.KeyFile != "" {
		for _, f := range []string{o.CertFile, o.KeyFile} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("webhook certificate: %w (both a certificate and a key file are needed)", err)
			}
		}
		return nil, nil
	}
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
