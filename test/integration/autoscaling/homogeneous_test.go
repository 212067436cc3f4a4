package autoscaling

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/test/wrappers"
)

func homogeneousPolicy(ns, name, target string, lo, hi int32, b workloadv1alpha1.AutoscalingPolicyBehavior) *workloadv1alpha1.AutoscalingPolicy {
	return &workloadv1alpha1.AutoscalingPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10,
			Metrics:          metric("10"),
			Behavior:         b,
			HomogeneousTarget: &workloadv1alpha1.HomogeneousTarget{
				Target:      workloadv1alpha1.Target{TargetRef: refTo(target), MetricSources: podSources()},
				MinReplicas: lo, MaxReplicas: hi,
			},
		},
	}
}

func msOf(ns, name string, n int32) *workloadv1alpha1.ModelServing {
	return wrappers.MakeModelServing(ns, name).Replicas(n).Role(wrappers.MakeRole("engine").Obj()).Obj()
}

// TestHomogeneousScalesOnMetric: tolerance holds still, load scales up,
// the stabilisation window delays scale-down, status and events follow.
func TestHomogeneousScalesOnMetric(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 10.8) // 1.08 of the target on one replica: inside the 10 % tolerance
	create(t, msOf(ns, "m", 1))
	f.waitEngines(t, "", 1)
	const window = 3 * time.Second
	create(t, homogeneousPolicy(ns, "p", "m", 1, 6, quickBehavior(window)))

	eventually(t, 10*time.Second, func() error {
		st := getPolicy(t, ns, "p").Status
		c := meta.FindStatusCondition(st.Conditions, autoscaling.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "num_requests_waiting=10.8/10") {
			return fmt.Errorf("ready condition %+v", c)
		}
		return nil
	})
	consistently(t, 2*time.Second, func() error {
		if got := replicas(t, ns, "m"); got != 1 {
			return fmt.Errorf("scaled to %d within tolerance", got)
		}
		return nil
	})

	// Three times the target: three replicas (the load then spreads to 10 each).
	f.setLoad("", 30)
	wantReplicas(t, 10*time.Second, ns, "m", 3)
	f.waitEngines(t, "", 3)
	consistently(t, 1500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 3 {
			return fmt.Errorf("replicas moved to %d at the target", got)
		}
		return nil
	})
	st := getPolicy(t, ns, "p").Status
	if h := st.HomogeneousStatus; h == nil || h.CurrentReplicas != 3 || h.DesiredReplicas != 3 || h.LastScaleTime == nil || h.Mode != autoscaling.ModeStable {
		t.Fatalf("homogeneous status %+v", h)
	}
	if c := meta.FindStatusCondition(st.Conditions, autoscaling.ConditionLastScale); c == nil || c.Reason != autoscaling.ReasonScaledUp || !strings.Contains(c.Message, "1 -> 3") {
		t.Fatalf("LastScale condition %+v", c)
	}

	// The load drops: nothing happens for the window, then one replica.
	f.setLoad("", 5)
	dropped := time.Now()
	consistently(t, window-time.Second, func() error {
		if got := replicas(t, ns, "m"); got != 3 {
			return fmt.Errorf("scaled down to %d %v after the drop, inside the %v window", got, time.Since(dropped), window)
		}
		return nil
	})
	wantReplicas(t, 10*time.Second, ns, "m", 1)
	// The window runs from the last high recommendation, at most one
	// period before the drop.
	if since := time.Since(dropped); since < window-syncPeriod {
		t.Fatalf("scaled down %v after the drop, window %v", since, window)
	}
	eventually(t, 5*time.Second, func() error {
		reasons := eventReasons(t, ns, "AutoscalingPolicy", "p")
		if !slices.Contains(reasons, autoscaling.ReasonScaledUp) || !slices.Contains(reasons, autoscaling.ReasonScaledDown) {
			return fmt.Errorf("policy events %v", reasons)
		}
		if r := eventReasons(t, ns, "ModelServing", "m"); !slices.Contains(r, autoscaling.ReasonScaledDown) {
			return fmt.Errorf("modelserving events %v", r)
		}
		return nil
	})
}

// TestPanicScalesUpFastNeverDown: with a stable policy of one replica a
// minute, panic mode reaches the recommendation in a few periods and holds
// it while the load falls.
func TestPanicScalesUpFastNeverDown(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 10)
	create(t, msOf(ns, "m", 1))
	f.waitEngines(t, "", 1)
	b := quickBehavior(0)
	b.ScaleUp.StablePolicy = workloadv1alpha1.AutoscalingPolicyStablePolicy{Instances: i32(1), Percent: i32(0), Period: dur(time.Minute), SelectPolicy: workloadv1alpha1.SelectPolicyOr, StabilizationWindow: dur(0)}
	const hold = 4 * time.Second
	b.ScaleUp.PanicPolicy = workloadv1alpha1.AutoscalingPolicyPanicPolicy{Percent: i32(300), Period: metav1.Duration{Duration: time.Second}, PanicThresholdPercent: i32(200), PanicModeHold: dur(hold)}
	create(t, homogeneousPolicy(ns, "p", "m", 1, 10, b))
	eventually(t, 10*time.Second, func() error {
		if c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready: %+v", c)
		}
		return nil
	})

	f.setLoad("", 80) // eight replicas' worth: 8x the current count
	jumped := time.Now()
	wantReplicas(t, 10*time.Second, ns, "m", 8)
	if took := time.Since(jumped); took > 6*time.Second {
		t.Fatalf("panic took %v to reach 8 replicas", took)
	}
	if m := getPolicy(t, ns, "p").Status.HomogeneousStatus.Mode; m != autoscaling.ModePanic {
		t.Fatalf("mode %q, want Panic", m)
	}
	// The load vanishes: panic mode never scales down while it holds.
	f.setLoad("", 0)
	consistently(t, hold/2, func() error {
		if got := replicas(t, ns, "m"); got != 8 {
			return fmt.Errorf("scaled to %d in panic mode", got)
		}
		return nil
	})
	// After the hold, stable mode (no window here) scales down.
	wantReplicas(t, 15*time.Second, ns, "m", 1)
}

// TestScaleToZeroAndWake: with minReplicas 0 an idle target goes to zero
// after the window and stays there; a scale-from-zero request brings it
// back at once and the window protects it again.
func TestScaleToZeroAndWake(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 0)
	create(t, msOf(ns, "m", 2))
	f.waitEngines(t, "", 2)
	const window = 2 * time.Second
	create(t, homogeneousPolicy(ns, "p", "m", 0, 4, quickBehavior(window)))
	wantReplicas(t, 15*time.Second, ns, "m", 0)
	eventually(t, 5*time.Second, func() error {
		st := getPolicy(t, ns, "p").Status
		if c := meta.FindStatusCondition(st.Conditions, autoscaling.ConditionReady); c == nil || c.Reason != autoscaling.ReasonAtZero {
			return fmt.Errorf("ready %+v", c)
		}
		if c := meta.FindStatusCondition(st.Conditions, autoscaling.ConditionLastScale); c == nil || c.Reason != autoscaling.ReasonScaledToZero {
			return fmt.Errorf("last scale %+v", c)
		}
		return nil
	})
	consistently(t, time.Second, func() error {
		if got := replicas(t, ns, "m"); got != 0 {
			return fmt.Errorf("woke up alone to %d", got)
		}
		return nil
	})

	if err := autoscaling.RequestScaleFromZero(context.Background(), env.Client, types.NamespacedName{Namespace: ns, Name: "m"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantReplicas(t, 5*time.Second, ns, "m", 1)
	// Still idle, but the window starts from the wake-up.
	consistently(t, window-500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 1 {
			return fmt.Errorf("scaled to %d right after waking", got)
		}
		return nil
	})
	if c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionLastScale); c == nil || c.Reason != autoscaling.ReasonScaledFromZero {
		t.Fatalf("last scale %+v", c)
	}
	// The same request again is stale once the target went back to zero.
	wantReplicas(t, 15*time.Second, ns, "m", 0)
	consistently(t, time.Second, func() error {
		if got := replicas(t, ns, "m"); got != 0 {
			return fmt.Errorf("a stale request woke the target to %d", got)
		}
		return nil
	})
}

// TestBadMetricsDoNotScaleWildly: an engine answering 500, NaN, garbage, or
// restarting with its counters reset never moves a settled target.
func TestBadMetricsDoNotScaleWildly(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 20)
	create(t, msOf(ns, "m", 2))
	f.waitEngines(t, "", 2)
	p := homogeneousPolicy(ns, "p", "m", 1, 10, quickBehavior(0))
	// A second metric on a counter rate: the simulated engines add their
	// share to generation tokens at every scrape (about 10 per scrape, a
	// rate of about 33/s per pod), far below a target of 1000/s.
	p.Spec.Metrics = append(p.Spec.Metrics, workloadv1alpha1.AutoscalingPolicyMetric{Name: "generation_tokens", TargetValue: resourceQ("1000")})
	p.Spec.HomogeneousTarget.Target.MetricSources["generation_tokens"] = workloadv1alpha1.MetricSource{Pod: &workloadv1alpha1.PodMetricSource{
		Name: "vllm:generation_tokens", Port: int32(enginePort)}}
	create(t, p)
	stays := func(what string, d time.Duration) {
		t.Helper()
		consistently(t, d, func() error {
			if got := replicas(t, ns, "m"); got != 2 {
				return fmt.Errorf("%s: replicas moved to %d", what, got)
			}
			return nil
		})
	}
	stays("good data", 1500*time.Millisecond)

	pod := "m-0-engine-0-0"
	for _, bad := range []struct {
		name string
		h    func(w http.ResponseWriter)
	}{
		{"HTTP 500", func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }},
		{"NaN", func(w http.ResponseWriter) {
			fmt.Fprint(w, "vllm:num_requests_waiting NaN\n# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total NaN\n")
		}},
		{"garbage", func(w http.ResponseWriter) { fmt.Fprint(w, "{{{ not metrics\n") }},
		{"series missing", func(w http.ResponseWriter) { fmt.Fprint(w, "other_metric 1\n") }},
		{"negative", func(w http.ResponseWriter) { fmt.Fprint(w, "vllm:num_requests_waiting -50\n") }},
	} {
		f.setOverride(pod, bad.h)
		stays(bad.name, 1200*time.Millisecond)
		f.setOverride(pod, nil)
	}
	// The engine restarts inside its container: its counter starts again
	// from zero. Then the container restarts (restart count up, counter
	// reset): the pod counts as unready for a cycle.
	f.resetEngine(pod, false)
	stays("counter reset", 1200*time.Millisecond)
	f.resetEngine(pod, true)
	stays("container restart", 1200*time.Millisecond)
	if c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("ready %+v", c)
	}
}

// TestWakeSizedByDemand: a request for capacity that carries the router's
// held demand wakes the target to ⌈demand / requests per replica⌉ (here the
// waiting target, 10), raises it while the demand grows, never lowers it,
// and stays within maxReplicas.
func TestWakeSizedByDemand(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 0)
	create(t, msOf(ns, "m", 0))
	create(t, homogeneousPolicy(ns, "p", "m", 0, 6, quickBehavior(time.Minute)))
	eventually(t, 10*time.Second, func() error {
		if c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionReady); c == nil || c.Reason != autoscaling.ReasonAtZero {
			return fmt.Errorf("ready %+v", c)
		}
		return nil
	})
	key := types.NamespacedName{Namespace: ns, Name: "m"}
	ask := func(demand int) {
		t.Helper()
		if err := autoscaling.RequestCapacity(context.Background(), env.Client, key, time.Now(), demand); err != nil {
			t.Fatal(err)
		}
	}

	ask(35) // 35 held, 10 per replica
	wantReplicas(t, 5*time.Second, ns, "m", 4)
	lastScale := func(reason, msg string) {
		t.Helper()
		eventually(t, 5*time.Second, func() error {
			c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionLastScale)
			if c == nil || c.Reason != reason || !strings.Contains(c.Message, msg) {
				return fmt.Errorf("last scale %+v", c)
			}
			return nil
		})
	}
	lastScale(autoscaling.ReasonScaledFromZero, "0 -> 4 (35 requests waiting at the router")
	if got := getMS(t, ns, "m").Annotations[autoscaling.ScaleFromZeroDemandAnnotation]; got != "35" {
		t.Fatalf("demand annotation %q", got)
	}

	// The pods are starting and more requests arrive: the next request
	// raises the count; beyond maxReplicas it is capped.
	time.Sleep(1100 * time.Millisecond) // the scale-up period (1 s) passes
	ask(55)
	wantReplicas(t, 5*time.Second, ns, "m", 6)
	lastScale(autoscaling.ReasonScaledUp, "4 -> 6 (55 requests waiting at the router")
	ask(500)
	ask(3) // a smaller demand never lowers the count
	consistently(t, 1500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 6 {
			return fmt.Errorf("replicas %d, want 6", got)
		}
		return nil
	})
}
