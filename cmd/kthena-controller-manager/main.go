// Command kthena-controller-manager runs Kthena's workload controllers.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kthena/kthena/internal/controllermanager"
)

func main() {
	opts := controllermanager.DefaultOptions()
	zapOpts := zap.Options{}
	fs := pflag.NewFlagSet("kthena-controller-manager", pflag.ExitOnError)
	opts.AddFlags(fs)
	goFlags := flag.NewFlagSet("go", flag.ExitOnError)
	zapOpts.BindFlags(goFlags)
	fs.AddGoFlagSet(goFlags)
	fs.AddGoFlagSet(flag.CommandLine) // --kubeconfig from controller-runtime
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	ctx := ctrl.SetupSignalHandler()
	cfg, err := ctrl.GetConfig()
	if err == nil {
		err = controllermanager.Run(ctx, cfg, opts)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kthena-controller-manager:", err)
		os.Exit(1)
	}
}
