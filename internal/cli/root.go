// Package cli holds the `kthena` command: `kthena up` runs the local
// platform, `kthena logs` shows a pod's container logs.
package cli

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// NewRoot returns the root command.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "kthena",
		Short:         "Kthena: Kubernetes-native LLM inference serving",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	root.PersistentFlags().String("state-dir", defaultStateDir(), "state directory of the local platform (etcd data, kubeconfig, logs)")
	root.AddCommand(newUp(), newLogs())
	return root
}

func defaultStateDir() string {
	if d := os.Getenv("KTHENA_STATE_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kthena"
	}
	return filepath.Join(home, ".kthena")
}

func stateDir(cmd *cobra.Command) (string, error) {
	d, err := cmd.Flags().GetString("state-dir")
	if err != nil {
		return "", err
	}
	return filepath.Abs(d)
}
