package autoscaling

import (
	"testing"
	"time"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// step is one cycle: the recommendation at time offset at (seconds), and
// the replicas the scaler must decide given current.
type step struct {
	at          int
	current     int32
	recommended int32
	want        int32
	mode        string
}

func TestScalerCorrect(t *testing.T) {
	defaults := behavior{
		up:    stableLimits{instances: 4, percent: 100, period: time.Minute},
		down:  stableLimits{instances: 0, percent: 100, period: time.Minute, window: 5 * time.Minute},
		panic: panicLimits{threshold: 200},
	}
	withPanic := defaults
	withPanic.panic = panicLimits{percent: 100, period: time.Minute, threshold: 200, hold: time.Minute}
	slowDown := defaults
	slowDown.down = stableLimits{instances: 1, percent: 10, period: time.Minute, and: true}
	upWindow := defaults
	upWindow.up.window = 30 * time.Second
	andUp := defaults
	andUp.up = stableLimits{instances: 2, percent: 50, period: time.Minute, and: true}
	cases := []struct {
		name   string
		b      behavior
		lo, hi int32
		steps  []step
	}{
		{"from zero an And policy still allows one replica", andUp, 0, 10, []step{
			{0, 0, 3, 1, ModeStable},
		}},
		{"scale-up limited to +max(4, 100%) per period", defaults, 1, 100, []step{
			{0, 2, 20, 6, ModeStable},
			{15, 6, 20, 6, ModeStable}, // base is still 2 within the period
			{61, 6, 20, 12, ModeStable},
		}},
		{"scale-down waits for the window (seeded with current)", defaults, 0, 10, []step{
			{0, 4, 1, 4, ModeStable},
			{120, 4, 1, 4, ModeStable},
			{301, 4, 1, 1, ModeStable},
		}},
		{"scale-down takes the highest recommendation of the window", defaults, 0, 10, []step{
			{0, 4, 4, 4, ModeStable},
			{100, 4, 3, 4, ModeStable},
			{301, 4, 0, 3, ModeStable},
			{401, 3, 0, 0, ModeStable},
		}},
		{"And takes the smaller scale-down step", slowDown, 0, 100, []step{
			{0, 50, 10, 49, ModeStable},
			{61, 49, 10, 48, ModeStable},
		}},
		{"scale-up window takes the lowest recommendation", upWindow, 1, 100, []step{
			{0, 2, 2, 2, ModeStable},
			{10, 2, 5, 2, ModeStable},
			{31, 2, 5, 5, ModeStable},
		}},
		{"panic scales up fast and never down", withPanic, 1, 100, []step{
			{0, 2, 10, 4, ModePanic}, // 2 * (1 + 100%) = 4
			{15, 4, 1, 4, ModePanic}, // no scale-down in panic
			{30, 4, 3, 4, ModePanic},
			{75, 4, 12, 8, ModePanic}, // hold renewed: base min in period is 4
		}},
		{"panic ends after its hold", withPanic, 1, 100, []step{
			{0, 2, 4, 4, ModePanic},
			{61, 4, 4, 4, ModeStable},
		}},
		{"bounds win", defaults, 2, 3, []step{
			{0, 1, 1, 2, ModeStable},
			{10, 2, 9, 3, ModeStable},
		}},
		{"zero stays zero", defaults, 0, 3, []step{
			{0, 0, 0, 0, ModeStable},
			{400, 0, 0, 0, ModeStable},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newScaler(c.b)
			t0 := time.Unix(1_000_000, 0)
			for i, st := range c.steps {
				d := s.correct(t0.Add(time.Duration(st.at)*time.Second), st.current, st.recommended, c.lo, c.hi)
				if d.replicas != st.want || d.mode != st.mode {
					t.Fatalf("step %d (t=%ds): got %d %s, want %d %s", i, st.at, d.replicas, d.mode, st.want, st.mode)
				}
			}
		})
	}
}

func TestScalerForceStartsWindow(t *testing.T) {
	s := newScaler(behavior{down: stableLimits{percent: 100, period: time.Minute, window: time.Minute}, up: stableLimits{instances: 4, percent: 100, period: time.Minute}})
	t0 := time.Unix(0, 0)
	s.correct(t0, 0, 0, 0, 5)
	s.force(t0.Add(10*time.Second), 1)
	if d := s.correct(t0.Add(20*time.Second), 1, 0, 0, 5); d.replicas != 1 {
		t.Fatalf("scaled down %v after a forced wake-up", d.replicas)
	}
	if d := s.correct(t0.Add(71*time.Second), 1, 0, 0, 5); d.replicas != 0 {
		t.Fatalf("got %d after the window, want 0", d.replicas)
	}
}

func TestResolveBehaviorDefaults(t *testing.T) {
	b := resolveBehavior(zeroBehavior())
	want := behavior{
		up:    stableLimits{instances: 4, percent: 100, period: time.Minute},
		down:  stableLimits{instances: 0, percent: 100, period: time.Minute, window: 5 * time.Minute},
		panic: panicLimits{threshold: 200},
	}
	if b != want {
		t.Fatalf("got %+v, want %+v", b, want)
	}
}

func zeroBehavior() workloadv1alpha1.AutoscalingPolicyBehavior {
	return workloadv1alpha1.AutoscalingPolicyBehavior{}
}
