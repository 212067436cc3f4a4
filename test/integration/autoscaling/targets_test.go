package autoscaling

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/test/wrappers"
)

// TestHeterogeneousFillsCheapestFirst: the total follows the load summed
// over both tiers; the cheap tier takes the first replicas, the dear one is
// used in growing blocks once the cheap blocks cost more.
func TestHeterogeneousFillsCheapestFirst(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 10)
	create(t, wrappers.MakeModelServing(ns, "cheap").Replicas(1).Role(wrappers.MakeRole("engine").Obj()).Obj())
	create(t, wrappers.MakeModelServing(ns, "dear").Replicas(0).Role(wrappers.MakeRole("engine").Obj()).Obj())
	f.waitEngines(t, "", 1)
	p := &workloadv1alpha1.AutoscalingPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10, Metrics: metric("10"), Behavior: quickBehavior(2 * time.Second),
			HeterogeneousTarget: &workloadv1alpha1.HeterogeneousTarget{
				CostExpansionRatePercent: 200,
				Params: []workloadv1alpha1.HeterogeneousTargetParam{
					{Target: workloadv1alpha1.Target{TargetRef: refTo("dear"), MetricSources: podSources()}, Cost: 3, MinReplicas: 0, MaxReplicas: 4},
					{Target: workloadv1alpha1.Target{TargetRef: refTo("cheap"), MetricSources: podSources()}, Cost: 1, MinReplicas: 1, MaxReplicas: 4},
				},
			},
		},
	}
	create(t, p)
	both := func(cheap, dear int32) func() error {
		return func() error {
			c, d := replicas(t, ns, "cheap"), replicas(t, ns, "dear")
			if c != cheap || d != dear {
				return fmt.Errorf("cheap %d dear %d, want %d %d", c, d, cheap, dear)
			}
			return nil
		}
	}
	// Three replicas' worth: cheap min 1, then its blocks of 1 (cost 1) and
	// 2 (cost 2) come before dear's first block (cost 3).
	f.setLoad("", 30)
	eventually(t, 10*time.Second, both(3, 0))
	f.waitEngines(t, "", 3)
	// Six: cheap is full at 4; dear's blocks of 1 and 2 give 2.
	f.setLoad("", 60)
	eventually(t, 10*time.Second, both(4, 2))
	f.waitEngines(t, "", 6)
	st := getPolicy(t, ns, "p").Status.HeterogeneousStatus
	if len(st) != 2 || st[0].Name != "dear" || st[0].DesiredReplicas != 2 || st[1].Name != "cheap" || st[1].DesiredReplicas != 4 {
		t.Fatalf("heterogeneous status %+v", st)
	}
	// Back down to two: dear empties first.
	f.setLoad("", 20)
	eventually(t, 15*time.Second, both(2, 0))
}

// disaggregatedPolicy scales roles p and d of ModelServing m on their own
// queue, keeping p/d within [lo, hi].
func disaggregatedPolicy(ns string, lo, hi string, pMin, dMin int32) *workloadv1alpha1.AutoscalingPolicy {
	role := func(min int32) workloadv1alpha1.RoleScalingParam {
		return workloadv1alpha1.RoleScalingParam{MinReplicas: min, MaxReplicas: 6, Metrics: metric("10"), MetricSources: podSources()}
	}
	return &workloadv1alpha1.AutoscalingPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10, Behavior: quickBehavior(2 * time.Second),
			DisaggregatedTarget: &workloadv1alpha1.DisaggregatedTarget{
				TargetRef: refTo("m"),
				Roles:     map[string]workloadv1alpha1.RoleScalingParam{"p": role(pMin), "d": role(dMin)},
				RatioConstraint: &workloadv1alpha1.RoleRatioConstraint{NumeratorRole: "p", DenominatorRole: "d",
					MinRatio: resource.MustParse(lo), MaxRatio: resource.MustParse(hi)},
			},
		},
	}
}

func wantRoles(t *testing.T, timeout time.Duration, ns string, p, d int32) {
	t.Helper()
	eventually(t, timeout, func() error {
		got := roleReplicas(t, ns, "m")
		if got["p"] != p || got["d"] != d {
			return fmt.Errorf("roles %v, want p=%d d=%d", got, p, d)
		}
		return nil
	})
}

// TestDisaggregatedRatioAndCoupledZero: each role follows its own load, the
// ratio is repaired towards more capacity, a role alone never goes to zero,
// both go to zero together and wake together.
func TestDisaggregatedRatioAndCoupledZero(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("p", 10)
	f.setLoad("d", 10)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(1).
		Role(wrappers.MakeRole("p").Obj()).Role(wrappers.MakeRole("d").Obj()).Obj())
	f.waitEngines(t, "", 2)
	create(t, disaggregatedPolicy(ns, "0.5", "1", 0, 0))

	// Prefill needs 4, decode 1: p/d = 4 is above 1, so decode is raised to 4.
	f.setLoad("p", 40)
	wantRoles(t, 10*time.Second, ns, 4, 4)
	eventually(t, 5*time.Second, func() error {
		ds := getPolicy(t, ns, "p").Status.DisaggregatedStatus
		if ds == nil || !ds.RatioAdjusted || ds.RatioStatus == nil || ds.RatioStatus.NumeratorRole != "p" {
			return fmt.Errorf("disaggregated status %+v", ds)
		}
		return nil
	})
	f.waitEngines(t, "", 8)

	// Prefill idle, decode needs 2: prefill alone may not reach zero and
	// the ratio's minimum 0.5 keeps it at 1.
	f.setLoad("p", 0)
	f.setLoad("d", 20)
	wantRoles(t, 15*time.Second, ns, 1, 2)
	f.waitEngines(t, "", 3)
	consistently(t, 1500*time.Millisecond, func() error {
		if got := roleReplicas(t, ns, "m"); got["p"] != 1 || got["d"] != 2 {
			return fmt.Errorf("roles moved to %v", got)
		}
		return nil
	})

	// Both idle: both reach zero together.
	f.setLoad("d", 0)
	wantRoles(t, 15*time.Second, ns, 0, 0)
	c := meta.FindStatusCondition(getPolicy(t, ns, "p").Status.Conditions, autoscaling.ConditionRatioConstraintViolated)
	if c == nil || c.Status != metav1.ConditionFalse {
		t.Fatalf("ratio condition %+v", c)
	}
	// A scale-from-zero request wakes both roles.
	if err := autoscaling.RequestScaleFromZero(context.Background(), env.Client, types.NamespacedName{Namespace: ns, Name: "m"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantRoles(t, 5*time.Second, ns, 1, 1)
}

// TestTargetClaimedByOlderPolicy: a second policy on the same ModelServing
// writes nothing and says why; pausing the first leaves a manual scale alone.
func TestTargetClaimedByOlderPolicy(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	f := startFleet(t, ns)
	f.setLoad("", 20)
	create(t, msOf(ns, "m", 2))
	f.waitEngines(t, "", 2)
	create(t, homogeneousPolicy(ns, "first", "m", 1, 5, quickBehavior(time.Second)))
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	second := homogeneousPolicy(ns, "second", "m", 4, 5, quickBehavior(time.Second))
	create(t, second)
	eventually(t, 10*time.Second, func() error {
		c := meta.FindStatusCondition(getPolicy(t, ns, "second").Status.Conditions, autoscaling.ConditionReady)
		if c == nil || c.Reason != autoscaling.ReasonTargetConflict {
			return fmt.Errorf("second policy ready %+v", c)
		}
		return nil
	})
	consistently(t, 1500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 2 {
			return fmt.Errorf("replicas %d: the second policy (min 4) wrote", got)
		}
		return nil
	})

	// Paused, the first policy leaves a manual scale in place.
	first := getPolicy(t, ns, "first")
	first.Annotations = map[string]string{autoscaling.PausedAnnotation: "true"}
	if err := env.Client.Update(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		c := meta.FindStatusCondition(getPolicy(t, ns, "first").Status.Conditions, autoscaling.ConditionReady)
		if c == nil || c.Reason != autoscaling.ReasonPaused {
			return fmt.Errorf("first policy ready %+v", c)
		}
		return nil
	})
	ms := getMS(t, ns, "m")
	ms.Spec.Replicas = i32(5)
	if err := env.Client.Update(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	consistently(t, 1500*time.Millisecond, func() error {
		if got := replicas(t, ns, "m"); got != 5 {
			return fmt.Errorf("paused policy moved replicas to %d", got)
		}
		return nil
	})
	// Resumed, the policy starts from the manual count and brings it back to
	// what the load needs once the scale-down window has passed.
	first = getPolicy(t, ns, "first")
	delete(first.Annotations, autoscaling.PausedAnnotation)
	if err := env.Client.Update(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	wantReplicas(t, 15*time.Second, ns, "m", 2)
}
