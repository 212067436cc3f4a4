package autoscaling

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/internal/testing/realserver"
	"github.com/kthena/kthena/test/wrappers"
)

// exporter serves the gauge kthena_test_load{case="<case>"} with values the
// test moves, for a real Prometheus to scrape.
type exporter struct {
	mu     sync.Mutex
	values map[string]float64
}

func startExporter(t *testing.T, values map[string]float64) (*exporter, string) {
	e := &exporter{values: values}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, strings.TrimPrefix(srv.URL, "http://")
}

func (e *exporter) set(c string, v float64) {
	e.mu.Lock()
	e.values[c] = v
	e.mu.Unlock()
}

// drop stops serving a case's series (Prometheus then marks it stale).
func (e *exporter) drop(c string) {
	e.mu.Lock()
	delete(e.values, c)
	e.mu.Unlock()
}

func (e *exporter) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cases := make([]string, 0, len(e.values))
	for c := range e.values {
		cases = append(cases, c)
	}
	sort.Strings(cases)
	fmt.Fprint(w, "# TYPE kthena_test_load gauge\n")
	for _, c := range cases {
		fmt.Fprintf(w, "kthena_test_load{case=%q} %g\n", c, e.values[c])
	}
}

// loadQuery selects the exporter's series of one case.
func loadQuery(c string) string { return fmt.Sprintf(`kthena_test_load{case=%q}`, c) }

func promMetric() []workloadv1alpha1.AutoscalingPolicyMetric { return metric("10") }

func promSources(server, query string) map[string]workloadv1alpha1.MetricSource {
	return map[string]workloadv1alpha1.MetricSource{"num_requests_waiting": {Prometheus: &workloadv1alpha1.PrometheusMetricSource{ServerURL: server, Query: query}}}
}

// promPolicy scales ModelServing target on one Prometheus query, whole
// target at 10 per replica.
func promPolicy(ns, name, target, server, query string, lo, hi int32, down time.Duration) *workloadv1alpha1.AutoscalingPolicy {
	p := homogeneousPolicy(ns, name, target, lo, hi, quickBehavior(down))
	p.Spec.Metrics = promMetric()
	p.Spec.HomogeneousTarget.Target.MetricSources = promSources(server, query)
	return p
}

// controllerMetric is a sample of the autoscaler's metric family name for a
// policy, target and metric, as the controller manager exports it.
func controllerMetric(t *testing.T, family, ns, policy, target, metricName string) (float64, bool) {
	t.Helper()
	fams, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"namespace": ns, "policy": policy, "target": target, "metric": metricName}
	for _, f := range fams {
		if f.GetName() != family {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if w, ok := want[l.GetName()]; ok && w != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func readyCondition(t *testing.T, ns, policy string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getPolicy(t, ns, policy).Status.Conditions, autoscaling.ConditionReady)
}

// TestPrometheusScalesFromZeroAndBack: a real Prometheus scrapes a load the
// test moves; a policy on an instant query of it scales its ModelServing
// up from zero (no pods, so only this metric can), up, down and to zero,
// holds while the series is gone, and shows the value in status and in its
// metrics.
func TestPrometheusScalesFromZeroAndBack(t *testing.T) {
	t.Parallel()
	load, target := startExporter(t, map[string]float64{"m": 0})
	prom := realserver.Prometheus(t, target)
	ns := newNamespace(t)
	startManager(t, ns)
	create(t, msOf(ns, "m", 0))
	const window = time.Second
	create(t, promPolicy(ns, "p", "m", prom, loadQuery("m"), 0, 5, window))

	eventually(t, 15*time.Second, func() error {
		c := readyCondition(t, ns, "p")
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != autoscaling.ReasonAtZero ||
			!strings.Contains(c.Message, "num_requests_waiting=0/10 [prometheus]") {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})
	if got := replicas(t, ns, "m"); got != 0 {
		t.Fatalf("an idle target at zero scaled to %d", got)
	}

	// 25 for the whole target, 10 per replica: three replicas, from zero.
	load.set("m", 25)
	wantReplicas(t, 10*time.Second, ns, "m", 3)
	// The status follows the scale write.
	eventually(t, 5*time.Second, func() error {
		st := getPolicy(t, ns, "p").Status
		if c := meta.FindStatusCondition(st.Conditions, autoscaling.ConditionLastScale); c == nil || c.Reason != autoscaling.ReasonScaledUp ||
			!strings.Contains(c.Message, "m: 0 -> 3 (num_requests_waiting=25/10 [prometheus])") {
			return fmt.Errorf("LastScale %+v", c)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		if v, ok := controllerMetric(t, "kthena_autoscaling_metric_value", ns, "p", "m", "num_requests_waiting"); !ok || v != 25 {
			return fmt.Errorf("kthena_autoscaling_metric_value = %v (found %v), want 25", v, ok)
		}
		return nil
	})

	// The value is for the whole target: it does not spread over replicas.
	load.set("m", 45)
	wantReplicas(t, 10*time.Second, ns, "m", 5)
	consistently(t, 1500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 5 {
			return fmt.Errorf("replicas moved to %d at a steady 45", got)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error {
		if c := readyCondition(t, ns, "p"); c == nil || c.Status != metav1.ConditionTrue || c.Message != "num_requests_waiting=45/10 [prometheus]" {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})

	// The series vanishes: the query matches nothing, the count stays, the
	// value is no longer exported.
	load.drop("m")
	eventually(t, 10*time.Second, func() error {
		if c := readyCondition(t, ns, "p"); c == nil || c.Status != metav1.ConditionFalse || c.Reason != autoscaling.ReasonNoMetrics || !strings.Contains(c.Message, "no series") {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})
	consistently(t, time.Second, func() error {
		if got := replicas(t, ns, "m"); got != 5 {
			return fmt.Errorf("replicas moved to %d with no value", got)
		}
		if _, ok := controllerMetric(t, "kthena_autoscaling_metric_value", ns, "p", "m", "num_requests_waiting"); ok {
			return fmt.Errorf("a stale metric value is still exported")
		}
		return nil
	})

	load.set("m", 12)
	wantReplicas(t, 10*time.Second, ns, "m", 2)
	load.set("m", 0)
	wantReplicas(t, 10*time.Second, ns, "m", 0)
	eventually(t, 5*time.Second, func() error {
		if c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionLastScale); c == nil || c.Reason != autoscaling.ReasonScaledToZero {
			return fmt.Errorf("LastScale %+v", c)
		}
		return nil
	})
}

// TestPrometheusBadAnswersNeverScale: a query that matches nothing, matches
// several series, returns a range or NaN, or a server that does not answer,
// leaves the replicas where they are and says why in Ready.
func TestPrometheusBadAnswersNeverScale(t *testing.T) {
	t.Parallel()
	// Two series of the load, each far above the target: a policy that
	// read them as a value would scale.
	_, target := startExporter(t, map[string]float64{"a": 50, "b": 50})
	prom := realserver.Prometheus(t, target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	_ = l.Close()

	ns := newNamespace(t)
	startManager(t, ns)
	cases := []struct {
		name, server, query string
		replicas            int32
		want                string
	}{
		{"empty", prom, loadQuery("absent"), 2, "no series"},
		{"several", prom, "kthena_test_load", 2, "2 series, want one"},
		{"range", prom, loadQuery("a") + "[1m]", 2, "range vector"},
		{"nan", prom, loadQuery("a") + " * 0 / 0", 2, "NaN"},
		{"parse-error", prom, "sum(kthena_test_load", 2, "bad_data"},
		{"unreachable", dead, loadQuery("a"), 2, "connection refused"},
		{"unreachable-at-zero", dead, loadQuery("a"), 0, "connection refused"},
	}
	for _, c := range cases {
		create(t, msOf(ns, c.name, c.replicas))
		// Minimum 0 and no scale-down window: any reading would move them.
		create(t, promPolicy(ns, c.name, c.name, c.server, c.query, 0, 10, 0))
	}
	for _, c := range cases {
		eventually(t, 15*time.Second, func() error {
			cond := readyCondition(t, ns, c.name)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != autoscaling.ReasonNoMetrics || !strings.Contains(cond.Message, c.want) {
				return fmt.Errorf("%s: ready %+v, want NoMetrics saying %q", c.name, cond, c.want)
			}
			return nil
		})
	}
	consistently(t, 2*time.Second, func() error {
		for _, c := range cases {
			if got := replicas(t, ns, c.name); got != c.replicas {
				return fmt.Errorf("%s: replicas moved from %d to %d", c.name, c.replicas, got)
			}
		}
		return nil
	})
	for _, c := range cases {
		if _, ok := controllerMetric(t, "kthena_autoscaling_metric_value", ns, c.name, c.name, "num_requests_waiting"); ok {
			t.Errorf("%s: a metric value was exported for a missing reading", c.name)
		}
	}
}

// TestPrometheusHeterogeneousAndRoles: tiers naming the same query read it
// once (its value is not counted per tier), and roles of a disaggregated
// target scale on their own queries, from zero too.
func TestPrometheusHeterogeneousAndRoles(t *testing.T) {
	t.Parallel()
	load, target := startExporter(t, map[string]float64{"het": 0, "p": 20, "d": 10})
	prom := realserver.Prometheus(t, target)
	ns := newNamespace(t)
	startManager(t, ns)

	create(t, wrappers.MakeModelServing(ns, "cheap").Replicas(0).Role(wrappers.MakeRole("engine").Obj()).Obj())
	create(t, wrappers.MakeModelServing(ns, "dear").Replicas(0).Role(wrappers.MakeRole("engine").Obj()).Obj())
	src := promSources(prom, loadQuery("het"))
	create(t, &workloadv1alpha1.AutoscalingPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "het"},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10, Metrics: promMetric(), Behavior: quickBehavior(time.Second),
			HeterogeneousTarget: &workloadv1alpha1.HeterogeneousTarget{
				CostExpansionRatePercent: 200,
				Params: []workloadv1alpha1.HeterogeneousTargetParam{
					{Target: workloadv1alpha1.Target{TargetRef: refTo("cheap"), MetricSources: src}, Cost: 1, MinReplicas: 0, MaxReplicas: 4},
					{Target: workloadv1alpha1.Target{TargetRef: refTo("dear"), MetricSources: src}, Cost: 3, MinReplicas: 0, MaxReplicas: 4},
				},
			},
		},
	})

	create(t, wrappers.MakeModelServing(ns, "pd").Replicas(1).
		Role(wrappers.MakeRole("p").Obj()).Role(wrappers.MakeRole("d").Obj()).Obj())
	role := func(c string) workloadv1alpha1.RoleScalingParam {
		return workloadv1alpha1.RoleScalingParam{MinReplicas: 0, MaxReplicas: 6, Metrics: promMetric(), MetricSources: promSources(prom, loadQuery(c))}
	}
	create(t, &workloadv1alpha1.AutoscalingPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pd"},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10, Behavior: quickBehavior(time.Second),
			DisaggregatedTarget: &workloadv1alpha1.DisaggregatedTarget{
				TargetRef: refTo("pd"),
				Roles:     map[string]workloadv1alpha1.RoleScalingParam{"p": role("p"), "d": role("d")},
			},
		},
	})
	roles := func(p, d int32) func() error {
		return func() error {
			got := roleReplicas(t, ns, "pd")
			if got["p"] != p || got["d"] != d {
				return fmt.Errorf("roles %v, want p=%d d=%d", got, p, d)
			}
			return nil
		}
	}
	tiers := func(cheap, dear int32) func() error {
		return func() error {
			c, d := replicas(t, ns, "cheap"), replicas(t, ns, "dear")
			if c != cheap || d != dear {
				return fmt.Errorf("cheap %d dear %d, want %d %d", c, d, cheap, dear)
			}
			return nil
		}
	}

	// 30 in total, read once for both tiers: three replicas, all cheap (the
	// same value summed per tier would ask for six).
	load.set("het", 30)
	eventually(t, 15*time.Second, tiers(3, 0))
	consistently(t, time.Second, tiers(3, 0))
	if c := readyCondition(t, ns, "het"); c == nil || c.Status != metav1.ConditionTrue || c.Message != "num_requests_waiting=30/10 [prometheus]" {
		t.Fatalf("heterogeneous ready %+v", c)
	}
	// 60: cheap is full at 4, dear takes 2.
	load.set("het", 60)
	eventually(t, 10*time.Second, tiers(4, 2))

	// Roles on their own queries: prefill 20 (2 replicas), decode 10 (1).
	eventually(t, 15*time.Second, roles(2, 1))
	eventually(t, 5*time.Second, func() error {
		if c := readyCondition(t, ns, "pd"); c == nil || !strings.Contains(c.Message, "d: num_requests_waiting=10/10 [prometheus]; p: num_requests_waiting=20/10 [prometheus]") {
			return fmt.Errorf("disaggregated ready %+v", c)
		}
		return nil
	})
	// Both idle: both go to zero; then prefill load alone wakes prefill,
	// and decode comes along (one role cannot serve without the other).
	load.set("p", 0)
	load.set("d", 0)
	eventually(t, 10*time.Second, roles(0, 0))
	load.set("p", 30)
	eventually(t, 10*time.Second, roles(3, 1))
}
