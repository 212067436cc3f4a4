package workload

import (
	"sort"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// scaleUnit is a group or a role replica considered for removal.
type scaleUnit struct {
	ordinal   int
	protected bool // below the partition
	ready     bool
	cost      int64
}

// scaleDownOrder sorts units so that the first is the one to remove first:
// unprotected before partition-protected, then not-ready before ready, then
// the lowest pod-deletion-cost sum, then the highest ordinal.
func scaleDownOrder(units []scaleUnit) []scaleUnit {
	out := append([]scaleUnit(nil), units...)
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.protected != y.protected {
			return !x.protected
		}
		if x.ready != y.ready {
			return !x.ready
		}
		if x.cost != y.cost {
			return x.cost < y.cost
		}
		return x.ordinal > y.ordinal
	})
	return out
}

// lowestFree returns the n lowest non-negative ordinals not in used.
func lowestFree(used map[int]bool, n int) []int {
	var out []int
	for i := 0; len(out) < n; i++ {
		if !used[i] {
			out = append(out, i)
		}
	}
	return out
}

// resolvePartition turns a partition into a count: a percentage of total
// rounded up, clamped to [0, total]. Unset is 0.
func resolvePartition(p *intstr.IntOrString, total int) int {
	if p == nil {
		return 0
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(p, total, true)
	if err != nil || v < 0 {
		return 0
	}
	return min(v, total)
}

// resolveMaxUnavailable turns a budget into a count: a percentage of total
// rounded down, at least 1. Unset means def.
func resolveMaxUnavailable(p *intstr.IntOrString, total, def int) int {
	if p == nil {
		return max(def, 1)
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(p, total, false)
	if err != nil {
		return 1
	}
	return max(v, 1)
}

// resolveGroupBudget turns a group rollout's maxUnavailable (a percentage of
// total rounded down; unset is 1) and maxSurge (a percentage of total rounded
// up; unset is 0) into counts. When both come to 0 the rollout could never
// proceed, so maxUnavailable becomes 1.
func resolveGroupBudget(maxUnavailable, maxSurge *intstr.IntOrString, total int) (int, int) {
	mu := 1
	if maxUnavailable != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, total, false)
		if err != nil {
			v = 1
		}
		mu = max(v, 0)
	}
	ms := 0
	if maxSurge != nil {
		v, err := intstr.GetScaledValueFromIntOrPercent(maxSurge, total, true)
		if err == nil {
			ms = max(v, 0)
		}
	}
	if mu == 0 && ms == 0 {
		mu = 1
	}
	return mu, ms
}

// updateBudget is how many more ready units a rolling update may take down:
// maxUnavailable minus the units already unavailable, never below 0.
func updateBudget(maxUnavailable, unavailable int) int {
	return max(maxUnavailable-unavailable, 0)
}
