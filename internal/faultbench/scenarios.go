package faultbench

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// Scenario is one fault injected under load.
type Scenario struct {
	Name string
	// Inject causes the fault and returns once the system should have
	// recovered from it.
	Inject func(ctx context.Context, e *env) error
	// NoFailures: the target is 0 failed, not only 0 lost.
	NoFailures bool
	// RateLimit, when set, gives the model's ModelRoute a rate limit.
	RateLimit func(ctx context.Context, e *env) (*networkingv1alpha1.RateLimit, error)
	// Setup, when set, runs after the model is served and before the load
	// (it may point the load elsewhere).
	Setup func(ctx context.Context, e *env) error
}

// Scenarios are the fault-injection scenarios, in the order they run.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "engine killed mid-stream", Inject: func(ctx context.Context, e *env) error {
			return e.signalEngine(ctx, syscall.SIGKILL, 0)
		}},
		{Name: "engine hung (SIGSTOP 15 s)", Inject: func(ctx context.Context, e *env) error {
			return e.signalEngine(ctx, syscall.SIGSTOP, 15*time.Second)
		}},
		{Name: "rolling update", Inject: func(ctx context.Context, e *env) error {
			return e.rollout(ctx, nil)
		}},
		{Name: "rolling update with surge", NoFailures: true, Inject: func(ctx context.Context, e *env) error {
			return e.rollout(ctx, func(ms *workloadv1alpha1.ModelServing) {
				one, zero := intstr.FromInt32(1), intstr.FromInt32(0)
				ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{Type: workloadv1alpha1.ServingGroupRollingUpdate,
					RollingUpdateConfiguration: &workloadv1alpha1.RollingUpdateConfiguration{MaxSurge: &one, MaxUnavailable: &zero}}
			})
		}},
		{Name: "scale-down 3 to 2", NoFailures: true, Inject: func(ctx context.Context, e *env) error {
			if err := e.update(ctx, func(ms *workloadv1alpha1.ModelServing) { ms.Spec.Replicas = ptr.To[int32](2) }); err != nil {
				return err
			}
			return e.waitSettled(ctx, 2)
		}},
		{Name: "router restarted: single router (drained)", NoFailures: true, Inject: func(ctx context.Context, e *env) error {
			return e.signalChild(ctx, "kthena-router", syscall.SIGTERM)
		}},
		{Name: "router restarted: one of two replicas (drained)", NoFailures: true,
			Setup:  func(ctx context.Context, e *env) error { return e.useRouterService(ctx) },
			Inject: func(ctx context.Context, e *env) error { return e.restartRouterReplica(ctx) }},
		{Name: "router rollout: two replicas replaced one at a time", NoFailures: true,
			Setup:  func(ctx context.Context, e *env) error { return e.useRouterService(ctx) },
			Inject: func(ctx context.Context, e *env) error { return e.rollRouters(ctx) }},
		{Name: "controller manager killed mid-rollout", NoFailures: true, Inject: func(ctx context.Context, e *env) error {
			return e.rollout(ctx, func(*workloadv1alpha1.ModelServing) {
				go func() {
					time.Sleep(time.Second)
					_ = e.signalChild(ctx, "kthena-controller-manager", syscall.SIGKILL)
				}()
			})
		}},
		{Name: "kube-apiserver restarted", NoFailures: true, Inject: func(ctx context.Context, e *env) error {
			if err := e.signalChild(ctx, "kube-apiserver", syscall.SIGKILL); err != nil {
				return err
			}
			return sleepCtx(ctx, 10*time.Second)
		}},
		{Name: "Redis restarted under global rate limits",
			RateLimit: func(ctx context.Context, e *env) (*networkingv1alpha1.RateLimit, error) {
				return e.globalRateLimit(ctx)
			},
			Setup:  func(ctx context.Context, e *env) error { return e.useRouterService(ctx) },
			Inject: func(ctx context.Context, e *env) error { return e.restartRedis(ctx, 5*time.Second) }},
	}
}

// signalEngine sends sig to the engine process of one ready pod; with a
// positive hold it sends SIGCONT after hold (for SIGSTOP), then waits for
// the pods to be ready again.
func (e *env) signalEngine(ctx context.Context, sig syscall.Signal, hold time.Duration) error {
	pods, err := e.readyPods(ctx)
	if err != nil || len(pods) == 0 {
		return fmt.Errorf("no ready pod to break: %v", err)
	}
	sim, ip := filepath.Join(e.binDir, "kthena-sim"), pods[0].Status.PodIP
	pid := platform.FindProcess(func(argv []string) bool { // the sim serving the pod's IP
		return argv[0] == sim && slices.ContainsFunc(argv[1:], func(a string) bool { return a == ip || strings.HasSuffix(a, "="+ip) })
	})
	if pid == 0 {
		return fmt.Errorf("no engine process for pod %s (%s)", pods[0].Name, pods[0].Status.PodIP)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	// The fault lasts until the pod has been seen unready and is back.
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		if !e.podReady(ctx, pods[0].Name) {
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if hold > 0 {
		if err := sleepCtx(ctx, hold); err != nil {
			return err
		}
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	return e.waitSettled(ctx, e.replicas)
}

// podReady reports whether the named pod exists and is ready.
func (e *env) podReady(ctx context.Context, name string) bool {
	var p corev1.Pod
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, &p); err != nil || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// signalChild sends sig to one of the platform's own children and waits
// until it has been restarted and the model answers again.
func (e *env) signalChild(ctx context.Context, name string, sig syscall.Signal) error {
	pid := platform.ChildPID(e.childPath(name), e.stateDir)
	if pid == 0 {
		return fmt.Errorf("no %s process", name)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if p := platform.ChildPID(e.childPath(name), e.stateDir); p != 0 && p != pid {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not restarted within 2 minutes", name)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	if name == "kthena-router" {
		// The fault lasts until the new router is ready.
		hc := &http.Client{Timeout: time.Second}
		for {
			if res, err := hc.Get(e.routerURL + "/readyz"); err == nil {
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready within 2 minutes", name)
			}
			if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return e.waitSettled(ctx, e.replicas)
}

// rollout changes the engines' template (an environment variable), after
// mutate, and waits until every group runs it.
func (e *env) rollout(ctx context.Context, mutate func(*workloadv1alpha1.ModelServing)) error {
	if err := e.update(ctx, func(ms *workloadv1alpha1.ModelServing) {
		if mutate != nil {
			mutate(ms)
		}
		c := &ms.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: "ROLLOUT", Value: strconv.FormatInt(time.Now().UnixNano(), 10)})
	}); err != nil {
		return err
	}
	return e.waitSettled(ctx, e.replicas)
}

func (e *env) update(ctx context.Context, mutate func(*workloadv1alpha1.ModelServing)) error {
	for range 20 {
		var ms workloadv1alpha1.ModelServing
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.model}, &ms); err != nil {
			return err
		}
		mutate(&ms)
		err := e.c.Update(ctx, &ms)
		if err == nil {
			if ms.Spec.Replicas != nil {
				e.replicas = int(*ms.Spec.Replicas)
			}
			return nil
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("updating ModelServing %s: conflicts", e.model)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
