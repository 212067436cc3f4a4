package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kthena/kthena/internal/platform"
)

func newUp() *cobra.Command {
	var opts platform.Options
	var demo string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run Kthena on this machine: API server, controllers, router and pods as local processes",
		Long: `up runs the whole system on one machine, in the foreground until interrupted:
a real etcd and kube-apiserver (state kept in --state-dir), Kthena's CRDs and
webhooks, the controller manager, the router and a node agent that runs pods
as local processes. With --demo it also deploys a simulated model and prints
a curl command that talks to it: --demo (or --demo=aggregated) deploys two
engines that serve whole requests, --demo=pd (or --demo pd) a prefill/decode
disaggregated model, --demo=autoscaling a model at zero replicas that the
autoscaler wakes when a request arrives and returns to zero when idle,
--demo=booster one ModelBooster from which the ModelBooster controller
generates two engines, their ModelServer and a ModelRoute.`,
		Args: func(cmd *cobra.Command, args []string) error {
			kind, rest, err := resolveDemo(demo, cmd.Flags().Changed("demo"), args)
			if err != nil {
				return err
			}
			demo = kind
			return cobra.NoArgs(cmd, rest)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Demo, opts.DemoKind = demo != "", demo
			dir, err := stateDir(cmd)
			if err != nil {
				return err
			}
			opts.StateDir = dir
			if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
				return err
			}
			zc := zap.NewProductionConfig()
			zc.OutputPaths = []string{filepath.Join(dir, "logs", "kthena.log")}
			zc.ErrorOutputPaths = zc.OutputPaths
			zl, err := zc.Build()
			if err != nil {
				return err
			}
			defer func() { _ = zl.Sync() }()
			opts.Log = zapr.NewLogger(zl)
			// client-go and controller-runtime log through the same file.
			ctrllog.SetLogger(opts.Log)
			klog.SetLogger(opts.Log)
			opts.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := platform.Run(ctx, opts); err != nil {
				return fmt.Errorf("kthena up: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&demo, "demo", "", "also deploy a demo model of simulated engines and print a curl command for it: "+
		"aggregated (the default of a bare --demo), pd (prefill/decode disaggregation), autoscaling (a model scaled from and to zero) or booster (a model deployed by one ModelBooster)")
	f.Lookup("demo").NoOptDefVal = platform.DemoAggregated
	f.IntVar(&opts.RouterPort, "router-port", 8080, "router port on 127.0.0.1")
	f.StringVar(&opts.RouterConfig, "router-config", "", "router configuration file (default: the router's built-in configuration); reloaded on change")
	f.DurationVar(&opts.AutoscalingSyncPeriod, "autoscaling-sync-period", 0, "how often the autoscaler evaluates each AutoscalingPolicy (0: the controller manager's default, 15s)")
	f.BoolVar(&opts.ControlPlaneOnly, "control-plane-only", false, "run only etcd, kube-apiserver, kube-controller-manager, the node agent and the service proxy: a cluster to install Kthena into with its Helm chart (the node agent runs the chart's images as the binaries in --bin-dir)")
	f.StringVar(&opts.BinDir, "bin-dir", "", "directory of kthena-controller-manager, kthena-router and kthena-sim (default: beside this binary)")
	f.StringVar(&opts.AssetsDir, "assets-dir", "", "directory of etcd and kube-apiserver (default: built by hack/envtest-bins.sh and cached)")
	f.StringVar(&opts.SourceDir, "source-dir", "", "Kthena source tree, to build missing control-plane binaries (default: found from the binary or the working directory)")
	return cmd
}

// resolveDemo returns the demo kind the --demo flag asks for ("" for no
// demo) and the arguments left. A bare --demo takes the default kind;
// pflag attaches an optional value only as --demo=pd, so the kind of
// `--demo pd` arrives as the first argument.
func resolveDemo(value string, set bool, args []string) (string, []string, error) {
	if !set {
		return "", args, nil
	}
	if value == platform.DemoAggregated && len(args) > 0 && platform.ValidDemoKind(args[0]) {
		value, args = args[0], args[1:]
	}
	if value == "" || !platform.ValidDemoKind(value) {
		return "", args, fmt.Errorf("--demo=%s: unknown demo (known: %s)", value, strings.Join(platform.DemoKinds(), ", "))
	}
	return value, args, nil
}
