// Package serviceproxy forwards connections to Services, as kube-proxy
// does on a node, for the local platform: there Services' cluster IPs are
// loopback addresses, so listening on them needs no privileges, and the
// pods behind them are local processes on their own loopback addresses.
package serviceproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Options configure a Proxy.
type Options struct {
	Client kubernetes.Interface
	// APIServer is the host:port the default/kubernetes Service forwards
	// to (it selects no pods); empty leaves that Service alone.
	APIServer string
	Log       logr.Logger
}

// Proxy listens on every TCP port of every Service with a cluster IP and
// forwards each connection to a ready pod the Service selects, round robin.
type Proxy struct {
	opts     Options
	services listersv1.ServiceLister
	pods     listersv1.PodLister

	mu        sync.Mutex
	listeners map[string]*listener // by "ip:port"
	next      atomic.Uint64
}

// listener serves one Service port.
type listener struct {
	ln        net.Listener
	namespace string
	service   string
	port      corev1.ServicePort
}

// New returns a Proxy; Run starts it.
func New(opts Options) *Proxy {
	return &Proxy{opts: opts, listeners: map[string]*listener{}}
}

// Run proxies until ctx ends, then closes every listener.
func (p *Proxy) Run(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(p.opts.Client, 0)
	svcInf := f.Core().V1().Services()
	p.services, p.pods = svcInf.Lister(), f.Core().V1().Pods().Lister()
	changed := make(chan struct{}, 1)
	notify := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify, DeleteFunc: notify, UpdateFunc: func(_, o any) { notify(o) },
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, f.Core().V1().Pods().Informer().HasSynced) {
		return ctx.Err()
	}
	defer p.closeAll()
	for {
		p.sync()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// sync opens a listener per Service port and closes those of ports and
// Services that are gone.
func (p *Proxy) sync() {
	svcs, err := p.services.List(labels.Everything())
	if err != nil {
		p.opts.Log.Error(err, "listing services")
		return
	}
	want := map[string]*listener{}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone {
			continue
		}
		for _, port := range s.Spec.Ports {
			if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
				continue
			}
			addr := net.JoinHostPort(s.Spec.ClusterIP, strconv.Itoa(int(port.Port)))
			want[addr] = &listener{namespace: s.Namespace, service: s.Name, port: port}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, l := range p.listeners {
		if w, ok := want[addr]; !ok || w.namespace != l.namespace || w.service != l.service {
			_ = l.ln.Close()
			delete(p.listeners, addr)
		} else {
			l.port = w.port // targetPort may change in place
		}
	}
	for addr, l := range want {
		if _, ok := p.listeners[addr]; ok {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			p.opts.Log.Error(err, "cannot listen for a Service", "service", l.namespace+"/"+l.service, "address", addr)
			continue
		}
		l.ln = ln
		p.listeners[addr] = l
		go p.serve(l)
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, l := range p.listeners {
		_ = l.ln.Close()
		delete(p.listeners, addr)
	}
}

func (p *Proxy) serve(l *listener) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.opts.Log.Error(err, "accept", "service", l.namespace+"/"+l.service)
			}
			return
		}
		go p.forward(conn, l)
	}
}

// forward connects conn to a backend and copies both ways until both
// sides are done.
func (p *Proxy) forward(conn net.Conn, l *listener) {
	defer conn.Close()
	p.mu.Lock()
	port := l.port
	p.mu.Unlock()
	backends, err := p.backends(l.namespace, l.service, port)
	if err != nil || len(backends) == 0 {
		p.opts.Log.V(2).Info("no backend for a Service connection", "service", l.namespace+"/"+l.service, "err", err)
		return
	}
	start := int(p.next.Add(1))
	var up net.Conn
	for i := range backends {
		up, err = net.DialTimeout("tcp", backends[(start+i)%len(backends)], 5*time.Second)
		if err == nil {
			break
		}
	}
	if up == nil {
		p.opts.Log.V(2).Info("no backend reachable", "service", l.namespace+"/"+l.service, "err", err)
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, conn)
	go pipe(conn, up)
	<-done
	<-done
}

// backends are the host:port addresses a Service port forwards to: the
// ready, running pods it selects, at the target port (a number, or a
// container port name resolved per pod).
func (p *Proxy) backends(namespace, name string, port corev1.ServicePort) ([]string, error) {
	svc, err := p.services.Services(namespace).Get(name)
	if err != nil {
		return nil, err
	}
	if len(svc.Spec.Selector) == 0 {
		if namespace == "default" && name == "kubernetes" && p.opts.APIServer != "" {
			return []string{p.opts.APIServer}, nil
		}
		return nil, fmt.Errorf("service has no selector")
	}
	pods, err := p.pods.Pods(namespace).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.PodIP == "" || !ready(pod) {
			continue
		}
		target, ok := targetPort(pod, port)
		if !ok {
			continue
		}
		out = append(out, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(target)))
	}
	return out, nil
}

func ready(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func targetPort(pod *corev1.Pod, port corev1.ServicePort) (int, bool) {
	tp := port.TargetPort
	switch {
	case tp.IntValue() > 0:
		return tp.IntValue(), true
	case tp.StrVal == "":
		return int(port.Port), true
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			if cp.Name == tp.StrVal {
				return int(cp.ContainerPort), true
			}
		}
	}
	return 0, false
}
