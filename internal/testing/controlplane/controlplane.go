// Package controlplane starts a real kube-apiserver and etcd for tests, with
// Kthena's CRDs installed and, optionally, its admission webhooks served.
//
// The binaries come from hack/envtest-bins.sh (built from source and cached);
// KUBEBUILDER_ASSETS overrides where they are looked for.
package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Options change what Start installs.
type Options struct {
	// ExtraCRDPaths are more CRD files or directories to install (for
	// example Volcano's PodGroup CRD).
	ExtraCRDPaths []string
	// Webhooks installs Kthena's webhook configurations pointing at a local
	// webhook server; serve it with Env.WebhookServerOptions().
	Webhooks bool
}

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	// AssetsDir holds kube-apiserver, etcd and kubectl.
	AssetsDir string
	// Kubeconfig is a kubeconfig file for kubectl.
	Kubeconfig string

	env *envtest.Environment
}

// RepoRoot is the root of the Kthena source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error
)

// AssetsDir returns the directory holding the control-plane binaries,
// building them on first use.
func AssetsDir() (string, error) {
	assetsOnce.Do(func() {
		if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
			assetsDir = dir
			return
		}
		var stdout bytes.Buffer
		cmd := exec.Command("bash", filepath.Join(RepoRoot(), "hack", "envtest-bins.sh"))
		cmd.Stdout = &stdout
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			assetsErr = fmt.Errorf("building control-plane binaries: %w", err)
			return
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		assetsDir = lines[len(lines)-1]
	})
	return assetsDir, assetsErr
}

// NewScheme returns a scheme with the built-in kinds and Kthena's kinds.
func NewScheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, workloadv1alpha1.AddToScheme, networkingv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // static registration; cannot fail at run time
		}
	}
	return s
}

// Start starts etcd and kube-apiserver and installs the CRDs.
func Start(opts Options) (*Env, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	s := NewScheme()
	env := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, opts.ExtraCRDPaths...),
			ErrorIfPathMissing: true,
			Scheme:             s,
		},
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
	}
	if opts.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(RepoRoot(), "config", "webhook")},
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting control plane: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	e := &Env{Config: cfg, Client: c, Scheme: s, AssetsDir: dir, env: env}
	if e.Kubeconfig, err = e.writeKubeconfig(); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e.Kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(e.Kubeconfig))
	}
	return e.env.Stop()
}

// WebhookHost, WebhookPort and WebhookCertDir say where the webhook server
// the installed configurations point at must listen, and its certificates.
func (e *Env) WebhookHost() string    { return e.env.WebhookInstallOptions.LocalServingHost }
func (e *Env) WebhookPort() int       { return e.env.WebhookInstallOptions.LocalServingPort }
func (e *Env) WebhookCertDir() string { return e.env.WebhookInstallOptions.LocalServingCertDir }

// Kubectl runs the kubectl built beside the control plane against it and
// returns its combined output.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.AssetsDir, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *Env) writeKubeconfig() (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "kthena-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "kthena-kubeconfig-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}
