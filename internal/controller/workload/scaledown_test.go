package workload

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func ordinals(us []scaleUnit) []int {
	var out []int
	for _, u := range us {
		out = append(out, u.ordinal)
	}
	return out
}

func TestScaleDownOrder(t *testing.T) {
	cases := []struct {
		name  string
		units []scaleUnit
		want  []int
	}{
		{"highest ordinal first", []scaleUnit{{ordinal: 0, ready: true}, {ordinal: 1, ready: true}, {ordinal: 2, ready: true}}, []int{2, 1, 0}},
		{"not ready first", []scaleUnit{{ordinal: 0}, {ordinal: 1, ready: true}, {ordinal: 2, ready: true}}, []int{0, 2, 1}},
		{"lowest cost first", []scaleUnit{{ordinal: 0, ready: true, cost: 5}, {ordinal: 1, ready: true, cost: -1}, {ordinal: 2, ready: true, cost: 10}}, []int{1, 0, 2}},
		{"not ready beats cost", []scaleUnit{{ordinal: 0, ready: true, cost: -100}, {ordinal: 1, cost: 100}}, []int{1, 0}},
		{"protected last", []scaleUnit{{ordinal: 0, protected: true}, {ordinal: 1, ready: true, cost: 100}}, []int{1, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ordinals(scaleDownOrder(c.units)); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestLowestFree(t *testing.T) {
	if got := lowestFree(map[int]bool{0: true, 2: true}, 3); !reflect.DeepEqual(got, []int{1, 3, 4}) {
		t.Fatalf("got %v", got)
	}
	if got := lowestFree(nil, 0); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}

func TestBudgetMath(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int) *intstr.IntOrString { v := intstr.FromInt32(int32(n)); return &v }
	partitions := []struct {
		p     *intstr.IntOrString
		total int
		want  int
	}{
		{nil, 4, 0}, {num(2), 4, 2}, {num(9), 4, 4}, {pct("50%"), 3, 2}, {pct("10%"), 4, 1}, {pct("0%"), 4, 0},
	}
	for _, c := range partitions {
		if got := resolvePartition(c.p, c.total); got != c.want {
			t.Errorf("resolvePartition(%v,%d) = %d, want %d", c.p, c.total, got, c.want)
		}
	}
	maxU := []struct {
		p          *intstr.IntOrString
		total, def int
		want       int
	}{
		{nil, 4, 1, 1}, {nil, 4, 4, 4}, {num(2), 4, 1, 2}, {pct("50%"), 3, 1, 1}, {pct("10%"), 4, 1, 1}, {pct("100%"), 4, 1, 4}, {num(0), 4, 1, 1},
	}
	for _, c := range maxU {
		if got := resolveMaxUnavailable(c.p, c.total, c.def); got != c.want {
			t.Errorf("resolveMaxUnavailable(%v,%d,%d) = %d, want %d", c.p, c.total, c.def, got, c.want)
		}
	}
	if updateBudget(2, 1) != 1 || updateBudget(1, 3) != 0 {
		t.Error("updateBudget")
	}
}
