package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Ports are the local ports of the platform's listeners. They are kept in
// <state>/ports.json and reused on the next start when still free, so that
// etcd's member URLs and bookmarks stay stable.
type Ports struct {
	EtcdClient     int `json:"etcdClient"`
	EtcdPeer       int `json:"etcdPeer"`
	APIServer      int `json:"apiServer"`
	Webhook        int `json:"controllerManagerWebhook"`
	ManagerHealth  int `json:"controllerManagerHealth"`
	ManagerMetrics int `json:"controllerManagerMetrics"`
	RouterWebhook  int `json:"routerWebhook"`
	RouterMetrics  int `json:"routerMetrics"`
	RouterDebug    int `json:"routerDebug"`
	// KubeControllerManager serves kube-controller-manager's /healthz.
	KubeControllerManager int `json:"kubeControllerManager"`
	// PodNetwork is the second octet of the pods' addresses (Services use
	// the next one); see claimNetworks.
	PodNetwork int `json:"podNetwork"`
	// Router is the router's API port: --router-port, not chosen here, but
	// recorded so that clients (kthena chat) find the router.
	Router int `json:"router"`
}

func loadPorts(path string, routerPort int) (Ports, error) {
	var p Ports
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &p)
	}
	taken := map[int]bool{routerPort: true}
	for _, f := range []*int{&p.EtcdClient, &p.EtcdPeer, &p.APIServer, &p.Webhook, &p.ManagerHealth, &p.ManagerMetrics, &p.RouterWebhook, &p.RouterMetrics, &p.RouterDebug, &p.KubeControllerManager} {
		if *f != 0 && !taken[*f] && portFree(*f) {
			taken[*f] = true
			continue
		}
		n, err := freePort(taken)
		if err != nil {
			return p, err
		}
		*f = n
		taken[n] = true
	}
	p.Router = routerPort
	return p, savePorts(path, p)
}

func savePorts(path string, p Ports) error {
	data, _ := json.MarshalIndent(p, "", "  ")
	return os.WriteFile(path, data, 0o644)
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// freePort picks a free port below the kernel's ephemeral range: a port
// from that range (what listening on :0 returns) can be taken by any
// outgoing connection between now and the moment the child binds it.
func freePort(taken map[int]bool) (int, error) {
	low, high := 20000, ephemeralLow()-1
	if high <= low {
		low, high = 1024, 65535
	}
	for range 200 {
		port := low + rand.IntN(high-low+1)
		if !taken[port] && portFree(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d", low, high)
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768
// when it cannot be read).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	if f := strings.Fields(string(data)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil {
			return n
		}
	}
	return 32768
}

func (u *up) etcd() *Process {
	peer := fmt.Sprintf("http://127.0.0.1:%d", u.ports.EtcdPeer)
	client := fmt.Sprintf("http://127.0.0.1:%d", u.ports.EtcdClient)
	return &Process{
		Name: "etcd",
		Path: filepath.Join(u.assets, "etcd"),
		Args: []string{
			"--name=kthena",
			"--data-dir=" + filepath.Join(u.opts.StateDir, "etcd"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=kthena=" + peer,
			"--unsafe-no-fsync=true",
			// One member: a slower raft tick costs nothing and wakes etcd
			// less often on an idle platform.
			"--heartbeat-interval=500",
			"--election-timeout=5000",
			"--log-level=warn",
		},
		Env:     []string{idleGOGC, oneProc},
		LogPath: u.logPath("etcd"),
	}
}

func (u *up) apiserver() *Process {
	p := u.pki
	return &Process{
		Name: "kube-apiserver",
		Path: filepath.Join(u.assets, "kube-apiserver"),
		Args: []string{
			fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", u.ports.EtcdClient),
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", u.ports.APIServer),
			"--cert-dir=" + filepath.Join(u.opts.StateDir, "apiserver"),
			"--tls-cert-file=" + p.ServingCertFile(),
			"--tls-private-key-file=" + p.ServingKeyFile(),
			"--client-ca-file=" + p.CAFile(),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + p.SAPubFile(),
			"--service-account-signing-key-file=" + p.SAKeyFile(),
			"--authorization-mode=RBAC",
			// Cluster IPs on the loopback interface, next to the pods'
			// network (127.2.0.0/16 for the first platform): the platform's service
			// proxy listens on them without privileges, and the API server
			// reaches webhooks behind Services through it. (Pod IPs are
			// loopback too, which EndpointSlices refuse, so the proxy
			// selects pods itself.)
			fmt.Sprintf("--service-cluster-ip-range=127.%d.0.0/16", u.ports.PodNetwork+1),
			// Pods run without service-account token volumes: the node
			// agent mounts none (kube-controller-manager still creates
			// each namespace's default ServiceAccount).
			"--disable-admission-plugins=ServiceAccount",
			"--allow-privileged=true",
			"--enable-priority-and-fairness=false",
			// Endpoints of the "kubernetes" Service cannot hold a loopback
			// address; without this the API server retries every 10s.
			"--endpoint-reconciler-type=none",
			"--profiling=false",
			// No identity lease to renew and collect every few seconds.
			"--feature-gates=APIServerIdentity=false",
		},
		Env:     []string{idleGOGC, oneProc},
		LogPath: u.logPath("kube-apiserver"),
	}
}

// kubeControllers are the kube-controller-manager controllers the platform
// runs: workloads, garbage collection, namespaces, endpoints, autoscaling,
// disruption budgets and service accounts. Node lifecycle (it would taint
// the node agent's node), cloud, volume and certificate controllers are
// left out: nothing here needs them.
var kubeControllers = []string{
	"garbage-collector-controller", "namespace-controller",
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"job-controller", "cronjob-controller", "ttl-after-finished-controller", "pod-garbage-collector-controller",
	"endpoints-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
	"horizontal-pod-autoscaler-controller", "disruption-controller",
	"serviceaccount-controller", "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
}

func (u *up) kubeControllerManager(kubeconfig string) *Process {
	return &Process{
		Name: "kube-controller-manager",
		Path: filepath.Join(u.assets, "kube-controller-manager"),
		Args: []string{
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			// Nothing authenticates to it with front-proxy headers.
			"--authentication-skip-lookup=true",
			"--bind-address=127.0.0.1",
			fmt.Sprintf("--secure-port=%d", u.ports.KubeControllerManager),
			"--tls-cert-file=" + u.pki.ServingCertFile(),
			"--tls-private-key-file=" + u.pki.ServingKeyFile(),
			"--controllers=" + strings.Join(kubeControllers, ","),
			"--leader-elect=false",
			"--use-service-account-credentials=false",
			"--service-account-private-key-file=" + u.pki.SAKeyFile(),
			"--root-ca-file=" + u.pki.CAFile(),
			"--cluster-name=kthena",
			"--profiling=false",
		},
		Env:     []string{idleGOGC, oneProc},
		LogPath: u.logPath("kube-controller-manager"),
	}
}

// idleGOGC makes the Go garbage collector of etcd and kube-apiserver run
// less often: their heaps are small here, and an idle platform should cost
// little CPU.
const idleGOGC = "GOGC=400"

// oneProc keeps the Go runtime of etcd and kube-apiserver on one thread:
// at idle, a second processor only adds wake-ups looking for work.
const oneProc = "GOMAXPROCS=1"

// restConfig is the admin client configuration.
func (u *up) restConfig() *rest.Config {
	return &rest.Config{
		Host: fmt.Sprintf("https://127.0.0.1:%d", u.ports.APIServer),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   u.pki.CAFile(),
			CertFile: u.pki.AdminCertFile(),
			KeyFile:  u.pki.AdminKeyFile(),
		},
		QPS:   100,
		Burst: 200,
	}
}

// waitAPIServer polls /readyz until it answers 200.
func (u *up) waitAPIServer(ctx context.Context, apiserver, etcd *Process) error {
	tlsCfg, err := u.pki.ClientTLS()
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	url := fmt.Sprintf("https://127.0.0.1:%d/readyz", u.ports.APIServer)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := apiserver.Exited(); err != nil {
			return err
		}
		if err := etcd.Exited(); err != nil {
			return err
		}
		resp, err := hc.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 90s (log: %s)", apiserver.LogPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// writeKubeconfig writes <state>/kubeconfig with the admin certificate
// embedded.
func (u *up) writeKubeconfig() (string, error) {
	read := func(f string) ([]byte, error) { return os.ReadFile(f) }
	ca, err := read(u.pki.CAFile())
	if err != nil {
		return "", err
	}
	cert, err := read(u.pki.AdminCertFile())
	if err != nil {
		return "", err
	}
	key, err := read(u.pki.AdminKeyFile())
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kthena"] = &clientcmdapi.Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", u.ports.APIServer), CertificateAuthorityData: ca}
	cfg.AuthInfos["kthena-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["kthena"] = &clientcmdapi.Context{Cluster: "kthena", AuthInfo: "kthena-admin", Namespace: "default"}
	cfg.CurrentContext = "kthena"
	path := filepath.Join(u.opts.StateDir, "kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}
