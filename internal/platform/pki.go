package platform

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the platform's certificate material, kept under <state>/pki so
// that kubeconfigs stay valid across restarts.
type PKI struct {
	Dir string
}

func (p PKI) path(name string) string { return filepath.Join(p.Dir, name) }

// CAFile, ServingCert... name the files.
func (p PKI) CAFile() string          { return p.path("ca.crt") }
func (p PKI) CAKeyFile() string       { return p.path("ca.key") }
func (p PKI) ServingCertFile() string { return p.path("serving.crt") }
func (p PKI) ServingKeyFile() string  { return p.path("serving.key") }
func (p PKI) AdminCertFile() string   { return p.path("admin.crt") }
func (p PKI) AdminKeyFile() string    { return p.path("admin.key") }
func (p PKI) SAKeyFile() string       { return p.path("sa.key") }
func (p PKI) SAPubFile() string       { return p.path("sa.pub") }

// Ensure creates whatever is missing: a CA, a serving certificate for
// 127.0.0.1/localhost (used by the API server and the webhook servers), an
// admin client certificate in system:masters and the service-account keys.
func (p PKI) Ensure() error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(p.SAPubFile()); err == nil {
		return nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "kthena-local-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writeCert(p.CAFile(), caDER); err != nil {
		return err
	}
	if err := writeKey(p.CAKeyFile(), caKey); err != nil {
		return err
	}
	leaf := func(certFile, keyFile string, tmpl *x509.Certificate) error {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore = now.Add(-time.Hour)
		tmpl.NotAfter = now.AddDate(10, 0, 0)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return err
		}
		if err := writeCert(certFile, der); err != nil {
			return err
		}
		return writeKey(keyFile, k)
	}
	if err := leaf(p.ServingCertFile(), p.ServingKeyFile(), &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kthena-local"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return err
	}
	if err := leaf(p.AdminCertFile(), p.AdminKeyFile(), &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kthena-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return err
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.SAKeyFile(), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return os.WriteFile(p.SAPubFile(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// CAPEM returns the CA certificate.
func (p PKI) CAPEM() ([]byte, error) { return os.ReadFile(p.CAFile()) }

// ClientTLS returns a TLS config that trusts the CA and presents the admin
// certificate.
func (p PKI) ClientTLS() (*tls.Config, error) {
	pool := x509.NewCertPool()
	ca, err := p.CAPEM()
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", p.CAFile())
	}
	cert, err := tls.LoadX509KeyPair(p.AdminCertFile(), p.AdminKeyFile())
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
