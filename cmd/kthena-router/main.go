// Command kthena-router is Kthena's OpenAI-compatible, LLM-aware router.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kthena/kthena/internal/router/provider/kubernetes"
	"github.com/kthena/kthena/internal/router/runner"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

func main() {
	var o runner.Options
	// The runner's flags and controller-runtime's --kubeconfig live on the
	// standard flag set; pflag carries them with the webhook flags.
	o.BindFlags(flag.CommandLine)
	fs := pflag.CommandLine
	fs.AddGoFlagSet(flag.CommandLine)
	enableWebhook := fs.Bool("enable-webhook", true, "Kubernetes mode: serve the networking admission webhooks (ModelRoute, ModelServer, ExternalModelProvider).")
	namespace := fs.String("watch-namespace", "", "Kubernetes mode: watch only this namespace (empty: all).")
	qps := fs.Float32("kube-api-qps", 50, "Kubernetes mode: API server client QPS.")
	burst := fs.Int("kube-api-burst", 100, "Kubernetes mode: API server client burst.")
	listenFD := fs.Int("listen-fd", 0, "serve the router port on this inherited file descriptor, a listening socket that a supervisor keeps open across restarts (kthena up does), instead of opening --port; accepting starts once the router is ready")
	var wh kthenawebhook.ServingOptions
	wh.AddFlags(fs, "kthena-router-webhook-certs")
	pflag.Parse()

	log := stdr.New(nil)
	o.Log = log
	if *listenFD > 0 {
		f := os.NewFile(uintptr(*listenFD), "router-listener")
		ln, err := net.FileListener(f) // a duplicate: the descriptor is closed below
		_ = f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kthena-router: --listen-fd:", err)
			os.Exit(1)
		}
		o.Listener = ln
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Kubernetes {
		// --kubeconfig, then $KUBECONFIG, in-cluster, ~/.kube/config.
		cfg, err := ctrl.GetConfig()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kthena-router: kubeconfig:", err)
			os.Exit(1)
		}
		cfg.QPS, cfg.Burst = *qps, *burst
		ko := kubernetes.Options{Config: cfg, Namespace: *namespace, OnExit: func(error) { stop() }}
		if *enableWebhook {
			ko.Webhook = &wh
		}
		o.KubernetesProvider = kubernetes.New(ko)
		if o.Waker, err = kubernetes.NewWaker(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "kthena-router:", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, o, log); err != nil {
		fmt.Fprintln(os.Stderr, "kthena-router:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o runner.Options, log logr.Logger) error {
	r, err := runner.Start(ctx, o)
	if err != nil {
		return err
	}
	log.Info("kthena-router serving", "addr", r.Addr())
	<-ctx.Done()
	log.Info("draining")
	return r.Shutdown(context.Background())
}
