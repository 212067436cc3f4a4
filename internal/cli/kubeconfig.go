package cli

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/homedir"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// kubeFlags are kubectl's connection flags (--kubeconfig, --context, -n,
// --server, ...) resolved exactly as kubectl resolves them, plus one
// fallback: the local platform's kubeconfig.
type kubeFlags struct {
	*genericclioptions.ConfigFlags
}

func addKubeFlags(cmd *cobra.Command) *kubeFlags {
	f := &kubeFlags{ConfigFlags: genericclioptions.NewConfigFlags(true)}
	f.AddFlags(cmd.Flags())
	return f
}

// errNoCluster replaces client-go's fallback to localhost:8080, which only
// ends in a confusing "connection refused".
var errNoCluster = errors.New("no cluster configured: pass --kubeconfig, set $KUBECONFIG, write ~/.kube/config, or start the local platform with kthena up")

// useLocalPlatform points --kubeconfig at <state-dir>/kubeconfig when nothing
// else would give kubectl a cluster (no --kubeconfig, no $KUBECONFIG, no
// ~/.kube/config) and `kthena up` has written one, so that the CLI works
// against the local platform with no flags. When there is no cluster at
// all it returns errNoCluster.
func (f *kubeFlags) useLocalPlatform(cmd *cobra.Command) error {
	if *f.KubeConfig != "" || os.Getenv("KUBECONFIG") != "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(homedir.HomeDir(), ".kube", "config")); err == nil {
		return nil
	}
	dir, err := stateDir(cmd)
	if err != nil {
		return err
	}
	local := filepath.Join(dir, "kubeconfig")
	if _, err := os.Stat(local); err == nil {
		*f.KubeConfig = local
		return nil
	}
	// --server alone, or the pod's service account, still name a cluster.
	if *f.APIServer != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return nil
	}
	return errNoCluster
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (f *kubeFlags) namespace() (string, error) {
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// client is a controller-runtime client knowing Kthena's kinds.
func (f *kubeFlags) client() (client.Client, error) {
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, workloadv1alpha1.AddToScheme, networkingv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return client.New(cfg, client.Options{Scheme: s})
}
