package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/kthena/kthena/internal/nodeagent"
)

func newLogs() *cobra.Command {
	var namespace, container string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs POD",
		Short: "Print the logs of a pod's container run by the local platform",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := stateDir(cmd)
			if err != nil {
				return err
			}
			podDir := filepath.Dir(nodeagent.LogPath(dir, namespace, args[0], "x"))
			if container == "" {
				entries, err := os.ReadDir(podDir)
				if err != nil {
					return fmt.Errorf("no logs for pod %s/%s under %s", namespace, args[0], dir)
				}
				var names []string
				for _, e := range entries {
					if n, ok := cutLog(e.Name()); ok {
						names = append(names, n)
					}
				}
				sort.Strings(names)
				switch len(names) {
				case 0:
					return fmt.Errorf("no logs for pod %s/%s", namespace, args[0])
				case 1:
					container = names[0]
				default:
					return fmt.Errorf("pod %s/%s has several containers, choose one with -c: %v", namespace, args[0], names)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			return printLog(ctx, cmd.OutOrStdout(), nodeagent.LogPath(dir, namespace, args[0], container), follow)
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "namespace of the pod")
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (default: the only one)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output")
	return cmd
}

func cutLog(name string) (string, bool) {
	if filepath.Ext(name) != ".log" {
		return "", false
	}
	return name[:len(name)-len(".log")], true
}

func printLog(ctx context.Context, out io.Writer, path string, follow bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	for {
		if _, err := io.Copy(out, f); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
