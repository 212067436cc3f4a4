// Package faultbench runs fault-injection scenarios under a steady mixed
// load on the local platform and reports, per scenario, what the clients
// saw: requests succeeded, failed visibly, and lost.
package faultbench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
	"github.com/kthena/kthena/internal/testing/realserver"
)

// Options configure a run.
type Options struct {
	BinDir, AssetsDir, WorkDir string
	Clients                    int
	MaxTokens                  int
	// TimeScale is the simulated engines' --time-scale (1: real-time
	// vLLM-like timing).
	TimeScale float64
	// Before is the load before the fault (the baseline p99), After the
	// load kept after the fault has been recovered from.
	Before, After time.Duration
	Only          []string // scenario names to run (empty: all)
	Progress      func(format string, args ...any)
	Log           logr.Logger
}

// Report is one scenario's figures.
type Report struct {
	Scenario                Scenario
	Sent, Succeeded, Failed int
	Lost                    int
	P99Before, P99During    time.Duration
	// MaxDuring is the slowest request sent while the fault lasted.
	MaxDuring                  time.Duration
	FaultTook                  time.Duration
	InjectErr                  error
	FailedSamples, LostSamples []string
}

// env is the platform and the model under test.
type env struct {
	c                 client.Client
	ns, model         string
	binDir, assetsDir string
	stateDir          string // the platform's, in its children's command lines
	routerURL         string
	replicas          int
	shared            *shared
}

// shared is what scenarios of one run set up once and reuse.
type shared struct {
	routerServiceURL string // the router replicas' Service
	redis            *realserver.RedisServer
	redisDir         string // redis-server's, removed at the end of the run
}

func (e *env) childPath(name string) string {
	switch name {
	case "kube-apiserver", "etcd", "kube-controller-manager":
		return filepath.Join(e.assetsDir, name)
	}
	return filepath.Join(e.binDir, name)
}

// Run starts one platform and runs each scenario on a fresh model.
func Run(ctx context.Context, o Options) ([]Report, error) {
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.WorkDir, "faults-")
	if err != nil {
		return nil, err
	}
	o.Progress("starting the local platform (state %s)", dir)
	stateDir := filepath.Join(dir, "state")
	in, err := platform.Start(ctx, platform.Options{StateDir: stateDir, BinDir: o.BinDir, AssetsDir: o.AssetsDir, Log: o.Log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = in.Stop() }()
	assets := o.AssetsDir
	if assets == "" {
		assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	var reports []Report
	sh := &shared{}
	defer sh.stop()
	for i, sc := range Scenarios() {
		if len(o.Only) > 0 && !slices.Contains(o.Only, sc.Name) {
			continue
		}
		e := &env{c: in.Client, ns: "default", model: fmt.Sprintf("faults-%d", i), binDir: o.BinDir, assetsDir: assets, stateDir: stateDir, routerURL: in.RouterURL, replicas: 3, shared: sh}
		o.Progress("scenario %q: deploying %s", sc.Name, e.model)
		if err := e.deploy(ctx, o, sc); err != nil {
			return reports, fmt.Errorf("%s: %w", sc.Name, err)
		}
		if sc.Setup != nil {
			if err := sc.Setup(ctx, e); err != nil {
				return reports, fmt.Errorf("%s: %w", sc.Name, err)
			}
		}
		r := runScenario(ctx, o, e, sc)
		o.Progress("scenario %q: %d sent, %d succeeded, %d failed, %d lost; p99 %s before, %s during (fault handled in %s)",
			sc.Name, r.Sent, r.Succeeded, r.Failed, r.Lost, r.P99Before.Round(time.Millisecond), r.P99During.Round(time.Millisecond), r.FaultTook.Round(time.Millisecond))
		reports = append(reports, r)
		_ = e.c.Delete(ctx, &workloadv1alpha1.ModelServing{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.model}})
	}
	return reports, nil
}

func runScenario(ctx context.Context, o Options, e *env, sc Scenario) Report {
	load := Load{URL: e.routerURL, Model: e.model, Clients: o.Clients, MaxTokens: o.MaxTokens, Deadline: 60 * time.Second}
	lctx, stop := context.WithCancel(ctx)
	results := make(chan []Result, 1)
	go func() { results <- load.Run(lctx) }()
	_ = sleepCtx(ctx, o.Before)
	began := time.Now()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err := sc.Inject(ictx, e)
	cancel()
	took := time.Since(began)
	_ = sleepCtx(ctx, o.After)
	stop()
	rs := <-results
	r := Report{Scenario: sc, FaultTook: took, InjectErr: err}
	var before, during []time.Duration
	for _, x := range rs {
		r.Sent++
		switch x.Outcome {
		case Succeeded:
			r.Succeeded++
		case FailedVisibly:
			r.Failed++
			if len(r.FailedSamples) < 3 {
				r.FailedSamples = append(r.FailedSamples, x.Detail)
			}
		case Lost:
			r.Lost++
			if len(r.LostSamples) < 3 {
				r.LostSamples = append(r.LostSamples, x.Detail)
			}
		}
		if x.Start.Before(began) {
			before = append(before, x.Latency)
		} else if x.Start.Before(began.Add(took)) {
			during = append(during, x.Latency)
		}
	}
	r.P99Before, r.P99During = p99(before), p99(during)
	if len(during) > 0 {
		r.MaxDuring = slices.Max(during)
	}
	return r
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[(len(ds)*99+99)/100-1]
}

// deploy creates a ModelServing of three simulated engines (with a preStop
// sleep, so that a deleted pod drains), its ModelServer and ModelRoute, and
// waits until the router serves it.
func (e *env) deploy(ctx context.Context, o Options, sc Scenario) error {
	ms := &workloadv1alpha1.ModelServing{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.model},
		Spec: workloadv1alpha1.ModelServingSpec{
			Replicas: ptr.To(int32(e.replicas)),
			Template: workloadv1alpha1.ServingGroup{Roles: []workloadv1alpha1.Role{{
				Name: "engine", Replicas: ptr.To[int32](1),
				EntryTemplate: workloadv1alpha1.PodTemplateSpec{
					Metadata: &workloadv1alpha1.Metadata{Labels: map[string]string{"app": e.model}},
					Spec: corev1.PodSpec{
						TerminationGracePeriodSeconds: ptr.To[int64](30),
						Containers: []corev1.Container{{
							Name: "engine", Image: "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1",
							Args:  []string{"--model", e.model, "--port", "8000", "--time-scale", fmt.Sprint(o.TimeScale)},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
							ReadinessProbe: &corev1.Probe{
								ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}},
								PeriodSeconds: 1, FailureThreshold: 1,
							},
							Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 2}}},
						}},
					},
				},
			}}},
		},
	}
	srv := &networkingv1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.model},
		Spec: networkingv1alpha1.ModelServerSpec{
			Model: ptr.To(e.model), InferenceEngine: networkingv1alpha1.VLLM,
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": e.model}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: 8000},
		},
	}
	route := &networkingv1alpha1.ModelRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: e.model},
		Spec: networkingv1alpha1.ModelRouteSpec{ModelName: e.model,
			Rules: []*networkingv1alpha1.Rule{{TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: e.model}}}}},
	}
	if sc.RateLimit != nil {
		rl, err := sc.RateLimit(ctx, e)
		if err != nil {
			return err
		}
		route.Spec.RateLimit = rl
	}
	for _, obj := range []client.Object{ms, srv, route} {
		if err := e.c.Create(ctx, obj); err != nil {
			return err
		}
	}
	if err := e.waitSettled(ctx, e.replicas); err != nil {
		return err
	}
	probe := Load{URL: e.routerURL, Model: e.model, MaxTokens: 1, Deadline: 10 * time.Second}
	hc := &http.Client{}
	for deadline := time.Now().Add(time.Minute); ; {
		r := probe.one(hc, false, "ping")
		if r.Outcome == Succeeded {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the router does not serve %s: %s", e.model, r.Detail)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// readyPods are the model's ready pods that are not terminating.
func (e *env) readyPods(ctx context.Context) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := e.c.List(ctx, &list, client.InNamespace(e.ns), client.MatchingLabels{"app": e.model}); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// waitSettled waits until exactly n pods exist, all ready, and the
// ModelServing's status says every group is updated and available.
func (e *env) waitSettled(ctx context.Context, n int) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var ms workloadv1alpha1.ModelServing
		var all corev1.PodList
		err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: e.model}, &ms)
		if err == nil {
			err = e.c.List(ctx, &all, client.InNamespace(e.ns), client.MatchingLabels{"app": e.model})
		}
		if err == nil {
			ready, _ := e.readyPods(ctx)
			st := ms.Status
			if len(ready) == n && len(all.Items) == n && st.ObservedGeneration == ms.Generation &&
				int(st.UpdatedReplicas) == n && int(st.AvailableReplicas) == n && int(st.Replicas) == n {
				return nil
			}
			err = fmt.Errorf("%d ready of %d pods, status %+v", len(ready), len(all.Items), st)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not settled at %d replicas after 3 minutes: %v", n, err)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}
