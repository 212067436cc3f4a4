package autoscaling

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// stableLimits bounds the change of replicas per period, in one direction.
type stableLimits struct {
	instances int32
	percent   int32
	period    time.Duration
	// and combines the bounds by taking the smaller change (And); false
	// takes the larger change (Or).
	and    bool
	window time.Duration
}

// panicLimits is the burst mode of scale-up.
type panicLimits struct {
	percent   int32
	period    time.Duration
	threshold int32
	hold      time.Duration
}

// behavior is a policy's behaviour with every default resolved.
type behavior struct {
	up    stableLimits
	down  stableLimits
	panic panicLimits
}

// resolveBehavior fills what the policy left unset with the defaults of the
// admission webhook (DefaultAutoscalingPolicy), so that a policy stored
// without the webhook behaves as one stored with it: scale-down at any pace
// after a 5 minute stabilisation window, scale-up by max(4, 100 %) per minute
// with no window, panic mode off.
func resolveBehavior(b workloadv1alpha1.AutoscalingPolicyBehavior) behavior {
	return behavior{
		up:   resolveStable(b.ScaleUp.StablePolicy, 4, time.Minute, 0),
		down: resolveStable(b.ScaleDown, 0, time.Minute, 5*time.Minute),
		panic: panicLimits{
			percent:   deref(b.ScaleUp.PanicPolicy.Percent, 0),
			period:    b.ScaleUp.PanicPolicy.Period.Duration,
			threshold: deref(b.ScaleUp.PanicPolicy.PanicThresholdPercent, 200),
			hold:      durationOr(b.ScaleUp.PanicPolicy.PanicModeHold, 0),
		},
	}
}

func resolveStable(p workloadv1alpha1.AutoscalingPolicyStablePolicy, instances int32, period, window time.Duration) stableLimits {
	return stableLimits{
		instances: deref(p.Instances, instances),
		percent:   deref(p.Percent, 100),
		period:    durationOr(p.Period, period),
		and:       p.SelectPolicy == workloadv1alpha1.SelectPolicyAnd,
		window:    durationOr(p.StabilizationWindow, window),
	}
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return max(d.Duration, 0)
}

// historyHorizon is how long the scaler must remember values for b.
func (b behavior) historyHorizon() time.Duration {
	return max(b.up.window, b.down.window, b.up.period, b.down.period, b.panic.period, time.Second)
}
