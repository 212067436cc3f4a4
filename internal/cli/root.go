// Package cli holds the `kthena` command: `kthena up` runs the local
// platform, `kthena logs` shows a pod's container logs, and the user-facing
// commands (get, describe, create manifest, chat, status) work on any
// cluster running Kthena, the local platform included.
package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// NewRoot returns the root command.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "kthena",
		Short: "Kthena: Kubernetes-native LLM inference serving",
		// Usage is for mistakes in the command line, not for failures of a
		// command that ran; Execute prints errors itself, on one line.
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("state-dir", defaultStateDir(), "state directory of the local platform (etcd data, kubeconfig, logs)")
	root.AddCommand(newUp(), newLogs(), newGet(), newDescribe(), newCreate(), newChat(), newStatus())
	return root
}

// Execute runs the root command with args and returns the exit code,
// printing an error as one line on stderr.
func Execute(args []string, stdout, stderr io.Writer) int {
	// client-go logs what it also returns as an error (and retries of
	// discovery); the error line is enough.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		_, _ = fmt.Fprintln(stderr, "error: "+oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine joins a multi-line message (cobra's hints, aggregated API errors).
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
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
