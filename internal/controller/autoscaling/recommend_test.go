package autoscaling

import (
	"math"
	"testing"
)

func fp(f float64) *float64 { return &f }

func TestRecommendOne(t *testing.T) {
	pods := func(missing, unready int, vals ...float64) metricReading {
		return metricReading{pods: &podReadings{values: vals, missing: missing, unready: unready}}
	}
	cases := []struct {
		name   string
		in     recommendInput
		want   int32
		wantOK bool
	}{
		{"within tolerance holds", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(0, 0, 10.5, 10.5, 10.5, 10.5)}, 4, true},
		{"just outside tolerance moves", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(0, 0, 12, 12, 12, 12)}, 5, true},
		{"double load doubles", recommendInput{current: 2, target: 5, tolerance: 0.1, reading: pods(0, 0, 10, 10)}, 4, true},
		{"idle goes to zero", recommendInput{current: 3, target: 5, tolerance: 0.1, reading: pods(0, 0, 0, 0, 0)}, 0, true},
		{"missing count as target on scale-down", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(2, 0, 0, 0)}, 2, true},
		{"missing count as zero on scale-up", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(2, 0, 20, 20)}, 4, true},
		{"unready count as zero on scale-up", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(0, 2, 40, 40)}, 8, true},
		{"unready ignored on scale-down", recommendInput{current: 4, target: 10, tolerance: 0.1, reading: pods(0, 2, 1, 1)}, 1, true},
		{"missing left out at the target", recommendInput{current: 2, target: 10, tolerance: 0.1, reading: pods(1, 0, 10)}, 2, true},
		{"missing flip holds", recommendInput{current: 3, target: 10, tolerance: 0, reading: pods(2, 0, 12)}, 3, true},
		{"no values, no recommendation", recommendInput{current: 3, target: 10, reading: pods(3, 0)}, 0, false},
		{"pods per replica", recommendInput{current: 2, target: 10, tolerance: 0.1, podsPerReplica: 2, reading: pods(0, 0, 20, 20, 20, 20)}, 4, true},
		{"whole-target value", recommendInput{current: 2, target: 10, tolerance: 0.1, reading: metricReading{total: fp(45)}}, 5, true},
		{"whole-target value from zero", recommendInput{current: 0, target: 10, tolerance: 0.1, reading: metricReading{total: fp(5)}}, 1, true},
		{"whole-target NaN", recommendInput{current: 2, target: 10, reading: metricReading{total: fp(math.NaN())}}, 0, false},
		{"bad target", recommendInput{current: 2, target: 0, reading: pods(0, 0, 1)}, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := recommendOne(c.in)
			if got != c.want || ok != c.wantOK {
				t.Errorf("recommendOne = %d, %v; want %d, %v", got, ok, c.want, c.wantOK)
			}
		})
	}
}

func TestRecommend(t *testing.T) {
	cases := []struct {
		name            string
		current, lo, hi int32
		per             []int32
		ok              bool
		want            int32
	}{
		{"largest metric wins", 2, 1, 10, []int32{3, 7, 1}, true, 7},
		{"clamped to max", 2, 1, 5, []int32{9}, true, 5},
		{"clamped to min", 2, 1, 5, []int32{0}, true, 1},
		{"below min jumps to min", 0, 2, 5, nil, false, 2},
		{"above max drops to max", 9, 1, 5, []int32{9}, true, 5},
		{"no data holds", 3, 1, 5, nil, false, 3},
	}
	for _, c := range cases {
		if got, _ := recommend(c.current, c.lo, c.hi, c.per, c.ok); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}
