// Package nodeagent is the local platform's kubelet: it registers a Node,
// binds pending pods to it (there is no scheduler on the local platform)
// and runs each pod's containers as local processes, each pod on its own
// loopback address, with probes, restarts, graceful termination, logs and
// status reported as a kubelet would.
package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Options configure the agent.
type Options struct {
	// NodeName is the Node the agent registers (default "kthena-local").
	NodeName string
	Client   kubernetes.Interface
	// StateDir holds container logs under logs/pods/<ns>/<pod>/<container>.log.
	StateDir string
	// BinDir holds kthena-sim.
	BinDir string
	Log    logr.Logger
	// RestartBackoff is the first crash-loop delay, doubled per crash up to
	// MaxRestartBackoff (defaults 1s and 60s: shorter than a kubelet's 10s
	// and 5m, so local work does not wait long).
	RestartBackoff, MaxRestartBackoff time.Duration
	// StopGrace caps each pod's grace period when the platform stops.
	StopGrace time.Duration
	// PodNetwork is the second octet of the pods' loopback addresses,
	// 127.<PodNetwork>.0.0/16 (default 1), so that platforms running side
	// by side give their pods different addresses.
	PodNetwork int
	// API, when set, is written into the kubeconfig of pods that name a
	// service account, so that they reach the API server as that account.
	API *APIAccess
	// Progress prints a line on the terminal (may be nil).
	Progress func(format string, args ...any)
}

// Agent is the node agent.
type Agent struct {
	opts    Options
	engines Engines
	ips     *ipPool
	queue   workqueue.TypedRateLimitingInterface[string]
	lister  func(key string) (*corev1.Pod, bool)

	mu      sync.Mutex
	workers map[string]*podWorker // by namespace/name
	wg      sync.WaitGroup
}

// New returns an agent.
func New(opts Options) *Agent {
	if opts.NodeName == "" {
		opts.NodeName = "kthena-local"
	}
	if opts.RestartBackoff <= 0 {
		opts.RestartBackoff = time.Second
	}
	if opts.MaxRestartBackoff <= 0 {
		opts.MaxRestartBackoff = time.Minute
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 30 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = func(string, ...any) {}
	}
	if opts.PodNetwork <= 0 || opts.PodNetwork > 254 {
		opts.PodNetwork = 1
	}
	return &Agent{opts: opts, ips: newIPPool(opts.PodNetwork), workers: map[string]*podWorker{}}
}

// podDir holds a pod's materialised volumes and credentials.
func (a *Agent) podDir(uid types.UID) string {
	return filepath.Join(a.opts.StateDir, "pods", string(uid))
}

// LogPath is where a container's output goes.
func LogPath(stateDir, namespace, pod, container string) string {
	return filepath.Join(stateDir, "logs", "pods", namespace, pod, container+".log")
}

// Run registers the node and runs pods until ctx ends, then stops every
// pod's processes gracefully (the pods stay in the API server and resume
// on the next start).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.registerNode(ctx); err != nil {
		return fmt.Errorf("registering node %s: %w", a.opts.NodeName, err)
	}
	factory := informers.NewSharedInformerFactory(a.opts.Client, 0)
	inf := factory.Core().V1().Pods().Informer()
	a.queue = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, n any) { enqueue(n) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	a.lister = func(key string) (*corev1.Pod, bool) {
		obj, ok, err := inf.GetStore().GetByKey(key)
		if err != nil || !ok {
			return nil, false
		}
		return obj.(*corev1.Pod), true
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	go a.heartbeat(ctx)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	for a.processNext(ctx) {
	}
	a.stopAll()
	factory.Shutdown()
	return nil
}

func (a *Agent) processNext(ctx context.Context) bool {
	key, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(key)
	if err := a.sync(ctx, key); err != nil {
		a.opts.Log.V(2).Info("pod sync failed; retrying", "pod", key, "err", err.Error())
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	return true
}

func (a *Agent) sync(ctx context.Context, key string) error {
	if ctx.Err() != nil {
		return nil
	}
	pod, ok := a.lister(key)
	a.mu.Lock()
	w := a.workers[key]
	a.mu.Unlock()
	if !ok {
		if w != nil {
			a.opts.Log.V(2).Info("pod removed from the API server; killing its processes", "pod", key)
			go w.terminate(0, false)
		}
		return nil
	}
	if pod.Spec.NodeName == "" {
		if pod.DeletionTimestamp != nil {
			return nil
		}
		return a.bind(ctx, pod)
	}
	if pod.Spec.NodeName != a.opts.NodeName {
		return nil
	}
	if w != nil && w.uid != pod.UID {
		go w.terminate(0, false)
		w = nil
	}
	if pod.DeletionTimestamp != nil {
		grace := int64(30)
		if pod.DeletionGracePeriodSeconds != nil {
			grace = *pod.DeletionGracePeriodSeconds
		}
		if w == nil {
			return a.finalizeDelete(ctx, pod)
		}
		go w.terminate(time.Duration(grace)*time.Second, true)
		return nil
	}
	if w != nil {
		w.setPod(pod)
		return nil
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	w = newPodWorker(a, pod)
	a.mu.Lock()
	a.workers[key] = w
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		w.run(ctx)
		a.mu.Lock()
		if a.workers[key] == w {
			delete(a.workers, key)
		}
		a.mu.Unlock()
		a.ips.release(w.ip)
	}()
	return nil
}

// bind assigns a pod to this node (the local platform has no scheduler;
// any schedulerName is accepted).
func (a *Agent) bind(ctx context.Context, pod *corev1.Pod) error {
	err := a.opts.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.opts.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err == nil {
		a.event(ctx, pod, corev1.EventTypeNormal, "Scheduled", fmt.Sprintf("Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, a.opts.NodeName))
	}
	return err
}

// finalizeDelete removes a pod whose processes are gone, as a kubelet does
// once a pod has terminated.
func (a *Agent) finalizeDelete(ctx context.Context, pod *corev1.Pod) error {
	zero := int64(0)
	uid := pod.UID
	_ = os.RemoveAll(a.podDir(uid))
	err := a.opts.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// stopAll stops every pod's processes in parallel, each within its grace
// period capped by StopGrace.
func (a *Agent) stopAll() {
	a.mu.Lock()
	ws := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	for _, w := range ws {
		go w.terminate(min(w.gracePeriod(), a.opts.StopGrace), false)
	}
	a.wg.Wait()
}

func (a *Agent) registerNode(ctx context.Context) error {
	nodes := a.opts.Client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, a.opts.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: a.opts.NodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": a.opts.NodeName,
				"kubernetes.io/os":       runtime.GOOS,
				"kubernetes.io/arch":     runtime.GOARCH,
				"kthena.io/local":        "true",
			},
		}}
		node, err = nodes.Create(ctx, node, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	return a.updateNodeStatus(ctx, node)
}

func (a *Agent) updateNodeStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.Now()
	host, _ := os.Hostname()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(250, resource.DecimalSI),
	}
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KthenaNodeAgentReady",
		Message: "kthena node agent is running pods as local processes", LastHeartbeatTime: now, LastTransitionTime: now}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready.LastTransitionTime = c.LastTransitionTime
		}
	}
	node.Status.Conditions = []corev1.NodeCondition{ready}
	node.Status.Capacity = capacity
	node.Status.Allocatable = capacity
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: host}}
	node.Status.NodeInfo = corev1.NodeSystemInfo{OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
		KubeletVersion: "kthena-node-agent", ContainerRuntimeVersion: "kthena-local-process://1"}
	_, err := a.opts.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// heartbeat refreshes the Ready condition every minute.
func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			node, err := a.opts.Client.CoreV1().Nodes().Get(ctx, a.opts.NodeName, metav1.GetOptions{})
			if err == nil {
				err = a.updateNodeStatus(ctx, node)
			}
			if err != nil && ctx.Err() == nil {
				a.opts.Log.Error(err, "node heartbeat")
			}
		}
	}
}

func memTotal() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			return kb * 1024
		}
	}
	return 8 << 30
}

// event records an Event about a pod.
func (a *Agent) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", pod.Name, time.Now().UnixNano()), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion},
		Reason: reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kthena-node-agent", Host: a.opts.NodeName},
	}
	if _, err := a.opts.Client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		a.opts.Log.V(2).Info("cannot record event", "pod", klogRef(pod), "reason", reason, "err", err.Error())
	}
}

func klogRef(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// ipPool hands out pod IPs in 127.<octet>.0.0/16.
type ipPool struct {
	octet int
	mu    sync.Mutex
	used  map[string]types.UID
	next  int
}

func newIPPool(octet int) *ipPool { return &ipPool{octet: octet, used: map[string]types.UID{}} }

func (p *ipPool) allocate(uid types.UID, prefer string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if prefer != "" {
		if owner, taken := p.used[prefer]; !taken || owner == uid {
			var a, b, c, d int
			if n, _ := fmt.Sscanf(prefer, "%d.%d.%d.%d", &a, &b, &c, &d); n == 4 && a == 127 && b == p.octet {
				p.used[prefer] = uid
				return prefer
			}
		}
	}
	for range 256 * 254 {
		p.next++
		n := p.next % (256 * 254)
		ip := fmt.Sprintf("127.%d.%d.%d", p.octet, n/254, n%254+1)
		if _, taken := p.used[ip]; !taken {
			p.used[ip] = uid
			return ip
		}
	}
	return "127.0.0.1"
}

func (p *ipPool) release(ip string) {
	p.mu.Lock()
	delete(p.used, ip)
	p.mu.Unlock()
}
