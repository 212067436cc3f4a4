// Package autoscaling tests the AutoscalingPolicy controller against a real
// kube-apiserver and etcd, with the ModelServing controller creating the
// pods. There is no kubelet: a fake one in the test marks each pod Running
// and Ready with its own loopback IP, where a test HTTP server plays the
// engine and serves a /metrics text the test moves.
package autoscaling

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/testing/controlplane"
)

var (
	env *controlplane.Env
	// enginePort is the metrics port of every simulated engine; each pod
	// has its own loopback IP.
	enginePort int
)

// syncPeriod is the controller's period in these tests.
const syncPeriod = 300 * time.Millisecond

func TestMain(m *testing.M) {
	if os.Getenv("KTHENA_TEST_VERBOSE") != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enginePort = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	env, err = controlplane.Start(controlplane.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	name = strings.Trim(name[:min(40, len(name))], "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// startManager runs the ModelServing and AutoscalingPolicy controllers for
// ns until the test ends.
func startManager(t *testing.T, ns string) {
	t.Helper()
	opts := controllermanager.DefaultOptions()
	opts.Controllers = []string{"*", autoscaling.ControllerName}
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.WatchNamespaces = []string{ns}
	opts.Workers = 2
	opts.Webhook.Enable = false
	opts.AutoscalingSyncPeriod = syncPeriod
	mgr, err := controllermanager.NewManager(context.Background(), env.Config, opts, controllermanager.Extra{SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop")
		}
	})
}

// nextIP hands out loopback addresses, one per simulated pod.
var nextIP atomic.Int32

func allocIP() string {
	n := int(nextIP.Add(1))
	return fmt.Sprintf("127.91.%d.%d", n/250, n%250+1)
}

// fleet simulates the engines of a namespace. Each role (the pods'
// modelserving.volcano.sh/role label) has a load spread evenly over its
// ready engines; every engine reports its share as
// vllm:num_requests_waiting, and a running total of it as the counter
// vllm:generation_tokens_total (rising by share per scrape). A per-pod
// override replaces an engine's answer (bad data).
type fleet struct {
	ns       string
	mu       sync.Mutex
	load     map[string]float64
	engines  map[string]*simEngine // by pod name
	override map[string]func(w http.ResponseWriter)
	stop     chan struct{}
	done     chan struct{}
}

type simEngine struct {
	pod, role, ip string
	uid           types.UID
	srv           *http.Server
	tokens        float64
	restarts      int32
}

func startFleet(t *testing.T, ns string) *fleet {
	f := &fleet{ns: ns, load: map[string]float64{}, engines: map[string]*simEngine{},
		override: map[string]func(http.ResponseWriter){}, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.halt)
	return f
}

// setLoad sets the load of a role ("" is any role).
func (f *fleet) setLoad(role string, v float64) {
	f.mu.Lock()
	f.load[role] = v
	f.mu.Unlock()
}

func (f *fleet) setOverride(pod string, h func(w http.ResponseWriter)) {
	f.mu.Lock()
	if h == nil {
		delete(f.override, pod)
	} else {
		f.override[pod] = h
	}
	f.mu.Unlock()
}

func (f *fleet) halt() {
	close(f.stop)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.engines {
		_ = e.srv.Close()
	}
}

func (f *fleet) serve(e *simEngine) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if h := f.override[e.pod]; h != nil {
			h(w)
			return
		}
		n := 0
		for _, o := range f.engines {
			if o.role == e.role {
				n++
			}
		}
		load, ok := f.load[e.role]
		if !ok {
			load = f.load[""]
		}
		share := load / float64(max(n, 1))
		e.tokens += share
		fmt.Fprintf(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} %g\n", share)
		fmt.Fprintf(w, "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{model_name=\"m\"} %g\n", e.tokens)
	})
}

// run plays the kubelet: every pod of the namespace becomes Running and
// Ready with a fresh loopback IP, where its engine listens; engines of
// deleted pods stop.
func (f *fleet) run() {
	defer close(f.done)
	ctx := context.Background()
	for {
		select {
		case <-f.stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		var list corev1.PodList
		if err := env.Client.List(ctx, &list, client.InNamespace(f.ns)); err != nil {
			continue
		}
		live := map[string]bool{}
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			live[p.Name] = true
			f.mu.Lock()
			e := f.engines[p.Name]
			if e != nil && e.uid != p.UID {
				_ = e.srv.Close()
				delete(f.engines, p.Name)
				e = nil
			}
			f.mu.Unlock()
			if e != nil && p.Status.PodIP != "" {
				continue
			}
			if e == nil {
				e = &simEngine{pod: p.Name, uid: p.UID, role: p.Labels[workloadv1alpha1.RoleLabelKey], ip: allocIP()}
				l, err := net.Listen("tcp", net.JoinHostPort(e.ip, strconv.Itoa(enginePort)))
				if err != nil {
					continue
				}
				e.srv = &http.Server{Handler: f.serve(e)}
				go func() { _ = e.srv.Serve(l) }()
				f.mu.Lock()
				f.engines[p.Name] = e
				f.mu.Unlock()
			}
			setReady(ctx, p, e.ip, 0)
		}
		f.mu.Lock()
		for name, e := range f.engines {
			if !live[name] {
				_ = e.srv.Close()
				delete(f.engines, name)
			}
		}
		f.mu.Unlock()
	}
}

// setReady writes the status a kubelet would for a running, ready pod.
func setReady(ctx context.Context, p *corev1.Pod, ip string, restarts int32) {
	p = p.DeepCopy()
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true, RestartCount: restarts})
	}
	if err := env.Client.Status().Update(ctx, p); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return
	}
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consistently checks that f keeps returning nil for d.
func consistently(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("condition broke: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func getMS(t *testing.T, ns, name string) *workloadv1alpha1.ModelServing {
	t.Helper()
	ms := &workloadv1alpha1.ModelServing{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

func getPolicy(t *testing.T, ns, name string) *workloadv1alpha1.AutoscalingPolicy {
	t.Helper()
	p := &workloadv1alpha1.AutoscalingPolicy{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// replicas is spec.replicas of a ModelServing.
func replicas(t *testing.T, ns, name string) int32 {
	t.Helper()
	return *getMS(t, ns, name).Spec.Replicas
}

// roleReplicas is the replicas of each role of a ModelServing.
func roleReplicas(t *testing.T, ns, name string) map[string]int32 {
	t.Helper()
	out := map[string]int32{}
	for _, r := range getMS(t, ns, name).Spec.Template.Roles {
		out[r.Name] = *r.Replicas
	}
	return out
}

func wantReplicas(t *testing.T, timeout time.Duration, ns, name string, want int32) {
	t.Helper()
	eventually(t, timeout, func() error {
		if got := replicas(t, ns, name); got != want {
			return fmt.Errorf("%s replicas = %d, want %d", name, got, want)
		}
		return nil
	})
}

// readyEngines waits until n pods of the namespace (of role, if set) are
// ready, so loads spread as in a settled fleet.
func (f *fleet) waitEngines(t *testing.T, role string, n int) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		var list corev1.PodList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(f.ns)); err != nil {
			return err
		}
		got := 0
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.PodIP != "" && (role == "" || p.Labels[workloadv1alpha1.RoleLabelKey] == role) {
				got++
			}
		}
		if got != n {
			return fmt.Errorf("%d ready engines of role %q, want %d", got, role, n)
		}
		return nil
	})
}

// metric is a policy metric on vllm:num_requests_waiting at target per
// replica.
func metric(target string) []workloadv1alpha1.AutoscalingPolicyMetric {
	return []workloadv1alpha1.AutoscalingPolicyMetric{{Name: "num_requests_waiting", TargetValue: resource.MustParse(target)}}
}

func podSources() map[string]workloadv1alpha1.MetricSource {
	return map[string]workloadv1alpha1.MetricSource{"num_requests_waiting": {Pod: &workloadv1alpha1.PodMetricSource{
		Name: "vllm:num_requests_waiting", Port: int32(enginePort), Uri: "/metrics"}}}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func i32(v int32) *int32 { return &v }

// quickBehavior scales up by up to 4 or 100 % per second and down at any
// pace after a scale-down window of down, without panic mode.
func quickBehavior(down time.Duration) workloadv1alpha1.AutoscalingPolicyBehavior {
	return workloadv1alpha1.AutoscalingPolicyBehavior{
		ScaleUp: workloadv1alpha1.AutoscalingPolicyScaleUpPolicy{
			StablePolicy: workloadv1alpha1.AutoscalingPolicyStablePolicy{Instances: i32(4), Percent: i32(100), Period: dur(time.Second), SelectPolicy: workloadv1alpha1.SelectPolicyOr, StabilizationWindow: dur(0)},
			// A typed client always sends panicPolicy, so the CRD's defaults
			// (hold 60s) would turn panic mode on: turn it off explicitly.
			PanicPolicy: workloadv1alpha1.AutoscalingPolicyPanicPolicy{PanicModeHold: dur(0)},
		},
		ScaleDown: workloadv1alpha1.AutoscalingPolicyStablePolicy{Instances: i32(0), Percent: i32(100), Period: dur(time.Second), SelectPolicy: workloadv1alpha1.SelectPolicyOr, StabilizationWindow: dur(down)},
	}
}

// events lists the reasons of the events about obj.
func eventReasons(t *testing.T, ns, kind, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == kind && e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func resourceQ(s string) resource.Quantity { return resource.MustParse(s) }

func refTo(name string) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: "ModelServing", Name: name}
}

// resetEngine restarts an engine: its counters start again from zero and,
// with container, its pod's restart count goes up.
func (f *fleet) resetEngine(pod string, container bool) {
	f.mu.Lock()
	e := f.engines[pod]
	if e != nil {
		e.tokens = 0
		e.restarts++
	}
	f.mu.Unlock()
	if e == nil || !container {
		return
	}
	p := &corev1.Pod{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ns, Name: pod}, p); err == nil {
		setReady(context.Background(), p, e.ip, e.restarts)
	}
}
