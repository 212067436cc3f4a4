// Package certs gives a webhook server its serving certificate when none is
// provided: it keeps a CA and a serving certificate in a Secret (so that every
// replica serves the same one), writes them where the server reads them,
// puts the CA into the webhook configurations, and renews both before they expire.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Secret keys, the same as a kubernetes.io/tls Secret plus the CA.
const (
	CACertKey = "ca.crt"
	CAKeyKey  = "ca.key"
	CertKey   = corev1.TLSCertKey
	KeyKey    = corev1.TLSPrivateKeyKey
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	certValidity = 365 * 24 * time.Hour
	// renewBefore: a certificate is replaced once less than this is left.
	renewBefore = 90 * 24 * time.Hour
)

// Manager keeps the serving certificate of one webhook server.
type Manager struct {
	Client client.Client
	// Secret holds the CA and the serving certificate.
	Secret types.NamespacedName
	// CertDir is where the webhook server reads tls.crt and tls.key.
	CertDir string
	// Hosts are the DNS names and IP addresses the certificate is valid for.
	Hosts []string
	// ValidatingWebhooks and MutatingWebhooks name the configurations whose
	// caBundle is kept equal to the CA.
	ValidatingWebhooks []string
	MutatingWebhooks   []string
	// CheckInterval is how often Start re-checks expiry; default one hour.
	CheckInterval time.Duration
	// Now returns the time; tests move it forward.
	Now func() time.Time
}

// Sync makes the Secret, the files and the caBundles current. Call it once
// before the webhook server starts.
func (m *Manager) Sync(ctx context.Context) error {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	sec, err := m.ensureSecret(ctx, now())
	if err != nil {
		return fmt.Errorf("webhook certificate secret %s: %w", m.Secret, err)
	}
	if err := writeFiles(m.CertDir, sec.Data); err != nil {
		return fmt.Errorf("writing webhook certificates to %s: %w", m.CertDir, err)
	}
	if err := m.injectCABundle(ctx, sec.Data[CACertKey]); err != nil {
		return fmt.Errorf("injecting the webhook CA: %w", err)
	}
	return nil
}

// Start re-syncs periodically until ctx ends, renewing before expiry.
func (m *Manager) Start(ctx context.Context) error {
	interval := m.CheckInterval
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Sync(ctx); err != nil {
				log.FromContext(ctx).Error(err, "Renewing the webhook certificate failed; retrying at the next check")
			}
		}
	}
}

// NeedLeaderElection is false: every replica serves webhooks.
func (m *Manager) NeedLeaderElection() bool { return false }

func (m *Manager) ensureSecret(ctx context.Context, now time.Time) (*corev1.Secret, error) {
	var sec corev1.Secret
	err := m.Client.Get(ctx, m.Secret, &sec)
	switch {
	case apierrors.IsNotFound(err):
		data, genErr := generate(m.Hosts, now, nil)
		if genErr != nil {
			return nil, genErr
		}
		sec = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: m.Secret.Name, Namespace: m.Secret.Namespace},
			Type:       corev1.SecretTypeOpaque,
			Data:       data,
		}
		if err := m.Client.Create(ctx, &sec); err != nil {
			if apierrors.IsAlreadyExists(err) { // another replica won the race
				return m.ensureSecret(ctx, now)
			}
			return nil, err
		}
		return &sec, nil
	case err != nil:
		return nil, err
	}
	if valid(sec.Data, m.Hosts, now) {
		return &sec, nil
	}
	data, err := generate(m.Hosts, now, sec.Data)
	if err != nil {
		return nil, err
	}
	sec.Data = data
	if err := m.Client.Update(ctx, &sec); err != nil {
		return nil, err
	}
	return &sec, nil
}

func (m *Manager) injectCABundle(ctx context.Context, ca []byte) error {
	var errs []error
	for _, name := range m.ValidatingWebhooks {
		errs = append(errs, patchCABundle(ctx, m.Client, &admissionregistrationv1.ValidatingWebhookConfiguration{}, name, ca,
			func(cfg *admissionregistrationv1.ValidatingWebhookConfiguration) (out []*admissionregistrationv1.WebhookClientConfig) {
				for i := range cfg.Webhooks {
					out = append(out, &cfg.Webhooks[i].ClientConfig)
				}
				return out
			}))
	}
	for _, name := range m.MutatingWebhooks {
		errs = append(errs, patchCABundle(ctx, m.Client, &admissionregistrationv1.MutatingWebhookConfiguration{}, name, ca,
			func(cfg *admissionregistrationv1.MutatingWebhookConfiguration) (out []*admissionregistrationv1.WebhookClientConfig) {
				for i := range cfg.Webhooks {
					out = append(out, &cfg.Webhooks[i].ClientConfig)
				}
				return out
			}))
	}
	return errors.Join(errs...)
}

// patchCABundle sets the caBundle of every client config of the named
// webhook configuration, patching only when one differs.
func patchCABundle[T client.Object](ctx context.Context, c client.Client, cfg T, name string, ca []byte, clientConfigs func(T) []*admissionregistrationv1.WebhookClientConfig) error {
	if err := c.Get(ctx, types.NamespacedName{Name: name}, cfg); err != nil {
		return err
	}
	patch := client.MergeFrom(cfg.DeepCopyObject().(client.Object))
	changed := false
	for _, cc := range clientConfigs(cfg) {
		if !bytes.Equal(cc.CABundle, ca) {
			cc.CABundle = ca
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return c.Patch(ctx, cfg, patch)
}

// valid reports whether data holds a CA and a serving certificate that cover
// hosts and stay valid for longer than renewBefore.
func valid(data map[string][]byte, hosts []string, now time.Time) bool {
	ca, err := parseCert(data[CACertKey])
	if err != nil || now.Add(renewBefore).After(ca.NotAfter) {
		return false
	}
	leaf, err := parseCert(data[CertKey])
	if err != nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(ca), CurrentTime: now}); err != nil {
		return false
	}
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// generate makes a serving certificate for hosts, signed by the CA in old
// when that CA is still good (so clients that trust it keep working), else by a new CA.
func generate(hosts []string, now time.Time, old map[string][]byte) (map[string][]byte, error) {
	caCert, caKey, caPEM, caKeyPEM, err := reuseCA(old, now)
	if err != nil {
		return nil, err
	}
	if caCert == nil {
		if caCert, caKey, caPEM, caKeyPEM, err = newCA(now); err != nil {
			return nil, err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: firstOr(hosts, "kthena-webhook")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		CACertKey: caPEM,
		CAKeyKey:  caKeyPEM,
		CertKey:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyKey:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func reuseCA(old map[string][]byte, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	ca, err := parseCert(old[CACertKey])
	if err != nil || now.Add(renewBefore).After(ca.NotAfter) {
		return nil, nil, nil, nil, nil
	}
	block, _ := pem.Decode(old[CAKeyKey])
	if block == nil {
		return nil, nil, nil, nil, nil
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, nil, nil, nil
	}
	return ca, key, old[CACertKey], old[CAKeyKey], nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kthena-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return cert, key,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// writeFiles writes the serving pair atomically; controller-runtime's
// certificate watcher picks up the change.
func writeFiles(dir string, data map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, k := range []string{CACertKey, KeyKey, CertKey} {
		path := filepath.Join(dir, k)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data[k]) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data[k], 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func poolOf(ca *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca)
	return p
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func firstOr(s []string, def string) string {
	if i := slices.IndexFunc(s, func(h string) bool { return net.ParseIP(h) == nil }); i >= 0 {
		return s[i]
	}
	return def
}
