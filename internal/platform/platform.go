// Package platform is `kthena up`: the whole system on one machine. It runs
// a real etcd and kube-apiserver with state kept under a state directory,
// installs Kthena's CRDs and webhooks, runs the controller manager and the
// router as child processes and a node agent that runs pods as local
// processes.
package platform

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kthena/kthena/internal/nodeagent"
	"github.com/kthena/kthena/internal/serviceproxy"
	"github.com/kthena/kthena/internal/webhook"
)

// Options configure `kthena up`.
type Options struct {
	// StateDir keeps etcd's data, certificates, the kubeconfig and logs.
	StateDir string
	// RouterPort is the router's listen port on 127.0.0.1.
	RouterPort int
	// Demo applies the demo model and prints a curl command.
	Demo bool
	// DemoKind is the demo Demo applies: DemoAggregated (also "") or
	// DemoPD (see DemoKinds).
	DemoKind string
	// BinDir holds kthena-controller-manager, kthena-router and kthena-sim
	// (default: beside the running executable).
	BinDir string
	// AssetsDir holds etcd, kube-apiserver and kubectl (default: the cache
	// of hack/envtest-bins.sh, building them when missing).
	AssetsDir string
	// SourceDir is the source tree, used to build missing control-plane
	// binaries (default: found from the working directory or BinDir).
	SourceDir string
	// RouterConfig is the router's configuration file (empty: its
	// built-in default); the router reloads it on change.
	RouterConfig string
	// AutoscalingSyncPeriod is passed to the controller manager as
	// --autoscaling-sync-period (0: its default, 15s).
	AutoscalingSyncPeriod time.Duration
	// ControlPlaneOnly runs etcd, kube-apiserver, kube-controller-manager
	// and the node agent, without Kthena's CRDs, webhooks, controller
	// manager and router: a cluster to install Kthena into with its Helm
	// chart, whose pods the node agent runs from BinDir.
	ControlPlaneOnly bool
	// Out receives progress lines.
	Out io.Writer
	Log logr.Logger
}

type up struct {
	opts   Options
	start  time.Time
	assets string
	pki    PKI
	ports  Ports
	outMu  sync.Mutex
}

func (u *up) logPath(name string) string { return filepath.Join(u.opts.StateDir, "logs", name+".log") }

func (u *up) progress(format string, args ...any) {
	u.outMu.Lock()
	defer u.outMu.Unlock()
	fmt.Fprintf(u.opts.Out, "[%5.1fs] %s\n", time.Since(u.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the platform until ctx ends, then stops everything it started:
// pods first, then the router and the controller manager, then the API
// server, then etcd.
func Run(ctx context.Context, opts Options) (err error) {
	u := &up{opts: opts, start: time.Now()}
	if u.opts.Out == nil {
		u.opts.Out = os.Stdout
	}
	if u.opts.RouterPort == 0 {
		u.opts.RouterPort = 8080
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "logs"), 0o755); err != nil {
		return err
	}
	lock, err := lockState(opts.StateDir)
	if err != nil {
		return err
	}
	defer lock.release()
	if u.opts.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		u.opts.BinDir = filepath.Dir(exe)
	}
	for _, b := range []string{"kthena-controller-manager", "kthena-router", "kthena-sim"} {
		if _, err := os.Stat(filepath.Join(u.opts.BinDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run `make build` first (or pass --bin-dir)", b, u.opts.BinDir)
		}
	}
	u.progress("state directory %s", opts.StateDir)
	if u.assets, err = u.findAssets(ctx); err != nil {
		return err
	}
	u.pki = PKI{Dir: filepath.Join(opts.StateDir, "pki")}
	if err := u.pki.Ensure(); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	portsFile := filepath.Join(opts.StateDir, "ports.json")
	if u.ports, err = loadPorts(portsFile, u.opts.RouterPort); err != nil {
		return err
	}
	nets, err := claimNetworks(u.ports.PodNetwork)
	if err != nil {
		return err
	}
	defer nets.release()
	u.ports.PodNetwork = nets.pod
	if err := savePorts(portsFile, u.ports); err != nil {
		return err
	}
	if u.opts.ControlPlaneOnly && u.opts.Demo {
		return fmt.Errorf("a demo needs Kthena's components: leave out the control-plane-only mode or the demo")
	}
	if !u.opts.ControlPlaneOnly && !portFree(u.opts.RouterPort) {
		return fmt.Errorf("router port 127.0.0.1:%d is in use (another `kthena up`?); pass --router-port", u.opts.RouterPort)
	}

	var stops []func()
	defer func() {
		u.progress("stopping the router, the controller manager, kube-apiserver and etcd")
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		u.progress("stopped; every process the platform started has exited")
	}()
	stopProc := func(p *Process, grace time.Duration) func() {
		return func() { p.Stop(grace) }
	}

	etcd := u.etcd()
	if err := etcd.Start(); err != nil {
		return err
	}
	stops = append(stops, stopProc(etcd, 10*time.Second))
	apiserver := u.apiserver()
	if err := apiserver.Start(); err != nil {
		return err
	}
	stops = append(stops, stopProc(apiserver, 10*time.Second))
	if err := u.waitAPIServer(ctx, apiserver, etcd); err != nil {
		return err
	}
	u.progress("etcd and kube-apiserver ready at https://127.0.0.1:%d", u.ports.APIServer)
	kubeconfig, err := u.writeKubeconfig()
	if err != nil {
		return err
	}
	cfg := u.restConfig()
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return err
	}
	ca, err := u.pki.CAPEM()
	if err != nil {
		return err
	}
	if u.opts.ControlPlaneOnly {
		// A state directory that ran Kthena before keeps webhook
		// configurations pointing at listeners that no longer run.
		for _, g := range []webhook.Group{webhook.WorkloadGroup, webhook.NetworkingGroup} {
			if err := removeWebhooks(ctx, c, g); err != nil {
				return err
			}
		}
	} else {
		n, err := installCRDs(ctx, c)
		if err != nil {
			return err
		}
		if err := ensureNamespace(ctx, c, SystemNamespace); err != nil {
			return err
		}
		if err := installWebhooks(ctx, c, webhook.WorkloadGroup, fmt.Sprintf("https://127.0.0.1:%d", u.ports.Webhook), ca); err != nil {
			return fmt.Errorf("installing workload webhooks: %w", err)
		}
		u.progress("%d CRDs and the workload webhooks installed; kubeconfig %s", n, kubeconfig)
	}

	// The node agent and the service proxy run in-process; they stop
	// (pods gracefully) before the binaries.
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	agentCtx, stopAgent := context.WithCancel(context.WithoutCancel(ctx))
	agentDone := make(chan struct{})
	agent := nodeagent.New(nodeagent.Options{
		Client: cs, StateDir: opts.StateDir, BinDir: u.opts.BinDir,
		Log: opts.Log.WithName("node-agent"), Progress: u.progress,
		API:        &nodeagent.APIAccess{Host: cfg.Host, CAData: ca},
		PodNetwork: u.ports.PodNetwork,
	})
	go func() {
		defer close(agentDone)
		if err := agent.Run(agentCtx); err != nil {
			u.progress("node agent stopped: %v", err)
		}
	}()
	proxy := serviceproxy.New(serviceproxy.Options{Client: cs, APIServer: fmt.Sprintf("127.0.0.1:%d", u.ports.APIServer), Log: opts.Log.WithName("service-proxy")})
	go func() {
		if err := proxy.Run(agentCtx); err != nil && agentCtx.Err() == nil {
			u.progress("service proxy stopped: %v", err)
		}
	}()
	// Deferred after the stops above, so it runs first: pods stop before
	// the binaries.
	defer func() {
		u.progress("stopping pods")
		stopAgent()
		<-agentDone
	}()

	kcm := u.kubeControllerManager(kubeconfig)
	if err := kcm.Start(); err != nil {
		return err
	}
	stops = append(stops, stopProc(kcm, 10*time.Second))

	supervised := []supervisedChild{{etcd, 10 * time.Second}, {apiserver, 10 * time.Second}, {kcm, 10 * time.Second}}
	if u.opts.ControlPlaneOnly {
		if err := u.waitHTTP(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", u.ports.KubeControllerManager), kcm, 60*time.Second); err != nil {
			return fmt.Errorf("kube-controller-manager not ready: %w", err)
		}
		stops = append(stops, superviseAll(supervised, u.progress)...)
		u.progress("control plane ready (no Kthena components): helm install kthena charts/kthena -n kthena-system --create-namespace --kubeconfig %s", kubeconfig)
	} else {
		routerURL, more, err := u.startKthena(ctx, c, kubeconfig, ca, kcm, &stops)
		if err != nil {
			return err
		}
		stops = append(stops, superviseAll(append(supervised, more...), u.progress)...)
		u.progress("Kthena is serving: kubectl --kubeconfig %s get modelservings,pods", kubeconfig)
		if opts.Demo {
			if err := u.demo(ctx, c, routerURL); err != nil {
				u.progress("demo failed: %v", err)
			}
		}
	}
	u.progress("running; press Ctrl-C to stop (logs: %s)", filepath.Join(opts.StateDir, "logs"))
	<-ctx.Done()
	return nil
}

// startKthena starts Kthena's controller manager and router as children,
// with the networking webhooks, waits until they and kube-controller-manager
// are ready, and returns the router's URL and the children to supervise.
func (u *up) startKthena(ctx context.Context, c client.Client, kubeconfig string, ca []byte, kcm *Process, stops *[]func()) (string, []supervisedChild, error) {
	manager := u.controllerManager(kubeconfig)
	if err := manager.Start(); err != nil {
		return "", nil, err
	}
	*stops = append(*stops, func() { manager.Stop(10 * time.Second) })

	routerSupportsWebhooks := u.binaryHasFlag("kthena-router", "webhook-port")
	if routerSupportsWebhooks {
		if err := installWebhooks(ctx, c, webhook.NetworkingGroup, fmt.Sprintf("https://127.0.0.1:%d", u.ports.RouterWebhook), ca); err != nil {
			return "", nil, err
		}
	} else if err := removeWebhooks(ctx, c, webhook.NetworkingGroup); err != nil {
		return "", nil, err
	}
	router, err := u.startRouter(kubeconfig, routerSupportsWebhooks)
	if err != nil {
		return "", nil, err
	}
	for _, f := range router.ExtraFiles {
		*stops = append(*stops, func() { _ = f.Close() }) // after the router's stop
	}
	*stops = append(*stops, func() { router.Stop(15 * time.Second) })
	if err := u.waitHTTP(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", u.ports.KubeControllerManager), kcm, 60*time.Second); err != nil {
		return "", nil, fmt.Errorf("kube-controller-manager not ready: %w", err)
	}
	if err := u.waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", u.ports.ManagerHealth), manager, 60*time.Second); err != nil {
		return "", nil, fmt.Errorf("controller manager not ready: %w", err)
	}
	routerURL := fmt.Sprintf("http://127.0.0.1:%d", u.opts.RouterPort)
	if err := u.waitHTTP(ctx, routerURL+"/readyz", router, 60*time.Second); err != nil {
		return "", nil, fmt.Errorf("router not ready: %w", err)
	}
	u.progress("kube-controller-manager, controller manager, router (%s) and node agent ready", routerURL)
	return routerURL, []supervisedChild{{manager, 10 * time.Second}, {router, 15 * time.Second}}, nil
}

// supervisedChild is a child process and its stop grace period.
type supervisedChild struct {
	p     *Process
	grace time.Duration
}

// superviseAll supervises each child from now on: one that exits is
// restarted with back-off and the platform keeps running (start-up
// failures before this end `kthena up` with the child's error). It returns
// their stops, which must run before the children's own (stops run in
// reverse), so that nothing restarts while stopping.
func superviseAll(children []supervisedChild, progress func(string, ...any)) []func() {
	var stops []func()
	for _, c := range children {
		sv := supervise(c.p, progress)
		stops = append(stops, func() { sv.Stop(c.grace) })
	}
	return stops
}

// SystemNamespace holds the platform's own objects.
const SystemNamespace = "kthena-system"

func (u *up) controllerManager(kubeconfig string) *Process {
	args := []string{
		"--kubeconfig=" + kubeconfig,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", u.ports.ManagerMetrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", u.ports.ManagerHealth),
		fmt.Sprintf("--webhook-port=%d", u.ports.Webhook),
		"--tls-cert-file=" + u.pki.ServingCertFile(),
		"--tls-private-key-file=" + u.pki.ServingKeyFile(),
		"--webhook-namespace=" + SystemNamespace,
	}
	if u.opts.AutoscalingSyncPeriod > 0 {
		args = append(args, "--autoscaling-sync-period="+u.opts.AutoscalingSyncPeriod.String())
	}
	return &Process{
		Name:    "kthena-controller-manager",
		Path:    filepath.Join(u.opts.BinDir, "kthena-controller-manager"),
		Args:    args,
		Env:     []string{"POD_NAMESPACE=" + SystemNamespace, "KUBECONFIG=" + kubeconfig},
		LogPath: u.logPath("kthena-controller-manager"),
	}
}

// startRouter starts the router with its Kubernetes provider.
func (u *up) startRouter(kubeconfig string, webhooks bool) (*Process, error) {
	args := []string{
		fmt.Sprintf("--port=%d", u.opts.RouterPort),
		fmt.Sprintf("--metrics-port=%d", u.ports.RouterMetrics),
		fmt.Sprintf("--debug-port=%d", u.ports.RouterDebug),
		"--kubernetes",
	}
	if u.binaryHasFlag("kthena-router", "kubeconfig") {
		args = append(args, "--kubeconfig="+kubeconfig)
	}
	if u.opts.RouterConfig != "" {
		args = append(args, "--config="+u.opts.RouterConfig)
	}
	if webhooks {
		dir := filepath.Join(u.opts.StateDir, "pki", "router-webhook")
		if err := copyServingCert(u.pki, dir); err != nil {
			return nil, err
		}
		args = append(args, fmt.Sprintf("--webhook-port=%d", u.ports.RouterWebhook), "--webhook-cert-dir="+dir)
	}
	p := &Process{
		Name: "kthena-router", Path: filepath.Join(u.opts.BinDir, "kthena-router"), Args: args,
		Env:     []string{"KUBECONFIG=" + kubeconfig, "POD_NAMESPACE=" + SystemNamespace},
		LogPath: u.logPath("kthena-router"),
	}
	if u.binaryHasFlag("kthena-router", "listen-fd") {
		// The platform holds the router's socket, so that while the router
		// restarts (supervised, or upgraded) clients' connections wait in
		// its backlog for the next router instead of being refused. The
		// shutdown delay makes keep-alive clients reconnect (Connection:
		// close) before the old router stops accepting.
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", u.opts.RouterPort))
		if err != nil {
			return nil, err
		}
		f, err := ln.(*net.TCPListener).File()
		_ = ln.Close() // f is a duplicate that keeps the socket open
		if err != nil {
			return nil, err
		}
		p.ExtraFiles = []*os.File{f}
		p.Args = append(p.Args, "--listen-fd=3", "--shutdown-delay=1s")
	}
	return p, p.Start()
}

func copyServingCert(p PKI, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for src, dst := range map[string]string{p.ServingCertFile(): "tls.crt", p.ServingKeyFile(): "tls.key"} {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// binaryHasFlag reports whether a binary's --help mentions --flag.
func (u *up) binaryHasFlag(bin, flag string) bool {
	out, _ := exec.Command(filepath.Join(u.opts.BinDir, bin), "--help").CombinedOutput()
	return strings.Contains(string(out), "-"+flag+" ") || strings.Contains(string(out), "-"+flag+"\n") || strings.Contains(string(out), "-"+flag+"=")
}

func (u *up) waitHTTP(ctx context.Context, url string, p *Process, timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	if ca, err := u.pki.CAPEM(); err == nil { // our children's HTTPS endpoints use the platform's CA
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	deadline := time.Now().Add(timeout)
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		if resp, err := hc.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (log: %s)", p.Name, timeout, p.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findAssets locates etcd and kube-apiserver, building them with
// hack/envtest-bins.sh on first use.
func (u *up) findAssets(ctx context.Context) (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	for _, d := range []string{u.opts.AssetsDir, os.Getenv("KUBEBUILDER_ASSETS")} {
		if d != "" {
			if !has(d) {
				return "", fmt.Errorf("no etcd and kube-apiserver in %s", d)
			}
			return d, nil
		}
	}
	script := u.findScript()
	if script == "" {
		home, _ := os.UserHomeDir()
		matches, _ := filepath.Glob(filepath.Join(home, ".cache", "kthena", "envtest", "kube-*"))
		for i := len(matches) - 1; i >= 0; i-- {
			if has(matches[i]) {
				return matches[i], nil
			}
		}
		return "", errors.New("etcd and kube-apiserver not found: run `make envtest-bins` in the source tree or pass --assets-dir")
	}
	// The script returns at once when the binaries are cached.
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = filepath.Dir(filepath.Dir(script))
	cmd.SysProcAttr = ChildAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	announced := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if !announced {
			u.progress("building etcd, kube-apiserver and kubectl from source (first run only; cached under ~/.cache/kthena)")
			announced = true
		}
		u.progress("  %s", sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("building control-plane binaries: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	dir := lines[len(lines)-1]
	if !has(dir) {
		return "", fmt.Errorf("hack/envtest-bins.sh printed %q, which has no etcd and kube-apiserver", dir)
	}
	return dir, nil
}

func (u *up) findScript() string {
	var roots []string
	if u.opts.SourceDir != "" {
		roots = append(roots, u.opts.SourceDir)
	}
	roots = append(roots, filepath.Dir(u.opts.BinDir))
	if wd, err := os.Getwd(); err == nil {
		roots = append(roots, wd)
	}
	for _, r := range roots {
		p := filepath.Join(r, "hack", "envtest-bins.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
