package certs

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kthena/kthena/internal/testing/controlplane"
)

// TestManagerIssuesInjectsAndRenews runs against a real API server: the
// first sync creates the Secret, writes a usable key pair and fills the
// caBundle; a sync close to expiry renews the serving certificate under the same CA.
func TestManagerIssuesInjectsAndRenews(t *testing.T) {
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	ctx := context.Background()
	c := env.Client

	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kthena-system"}}); err != nil {
		t.Fatal(err)
	}
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kthena-test"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "v.kthena.test",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9443/validate")},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	if err := c.Create(ctx, cfg); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	dir := t.TempDir()
	m := &Manager{
		Client:             c,
		Secret:             types.NamespacedName{Namespace: "kthena-system", Name: "kthena-webhook-certs"},
		CertDir:            dir,
		Hosts:              []string{"kthena-webhook.kthena-system.svc", "127.0.0.1"},
		ValidatingWebhooks: []string{"kthena-test"},
		Now:                func() time.Time { return now },
	}
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertKey), filepath.Join(dir, KeyKey))
	if err != nil {
		t.Fatalf("written key pair unusable: %v", err)
	}
	first := pair.Leaf
	if first == nil || first.VerifyHostname("127.0.0.1") != nil || first.VerifyHostname("kthena-webhook.kthena-system.svc") != nil {
		t.Fatalf("certificate does not cover the hosts: %+v", first)
	}
	var got admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, types.NamespacedName{Name: "kthena-test"}, &got); err != nil {
		t.Fatal(err)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, CACertKey))
	if string(got.Webhooks[0].ClientConfig.CABundle) != string(ca) || len(ca) == 0 {
		t.Fatal("caBundle was not set to the CA")
	}

	// A second sync with nothing due changes nothing.
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := tls.LoadX509KeyPair(filepath.Join(dir, CertKey), filepath.Join(dir, KeyKey)); again.Leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatal("certificate replaced although it was far from expiry")
	}

	// Close to the end of the serving certificate: renewed, CA kept.
	now = now.Add(certValidity - renewBefore/2)
	if err := m.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	renewed, err := tls.LoadX509KeyPair(filepath.Join(dir, CertKey), filepath.Join(dir, KeyKey))
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("certificate not renewed near expiry")
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, CACertKey)); string(ca2) != string(ca) {
		t.Fatal("CA replaced although it was still valid; clients trusting it would break")
	}
	if !renewed.Leaf.NotAfter.After(now.Add(renewBefore)) {
		t.Fatalf("renewed certificate expires too soon: %v", renewed.Leaf.NotAfter)
	}
}
