package autoscaling

import "math"

// bounds are a role's replica limits.
type bounds struct{ lo, hi int32 }

func (b bounds) clamp(v int32) int32 { return min(max(v, b.lo), b.hi) }

// ratioLimits bounds numerator/denominator; nil means no constraint.
type ratioLimits struct{ lo, hi float64 }

// repairRoles makes a pair of role counts (numerator, denominator) valid:
// each within its bounds; both zero or neither (a role alone at zero is
// raised to max(1, its minimum), because one role cannot serve without the
// other); and, with limits, the ratio inside them. Repair is biased to scale
// up: a ratio below the minimum raises the numerator, above the maximum
// raises the denominator; only when the raised role is at its maximum is the
// other lowered. adjusted reports whether the result differs from the
// clamped input.
func repairRoles(num, den int32, nb, db bounds, limits *ratioLimits) (n, d int32, adjusted bool) {
	n, d = nb.clamp(num), db.clamp(den)
	inN, inD := n, d
	if n == 0 && d == 0 {
		return 0, 0, false
	}
	if n == 0 {
		n = max(1, nb.lo)
	}
	if d == 0 {
		d = max(1, db.lo)
	}
	if limits != nil {
		const eps = 1e-9
		if limits.lo > 0 && float64(n) < limits.lo*float64(d)-eps {
			want := int32(math.Ceil(limits.lo*float64(d) - eps))
			if want <= nb.hi {
				n = want
			} else {
				n = nb.hi
				d = db.clamp(int32(math.Floor(float64(n)/limits.lo + eps)))
			}
		}
		if limits.hi > 0 && float64(n) > limits.hi*float64(d)+eps {
			want := int32(math.Ceil(float64(n)/limits.hi - eps))
			if want <= db.hi {
				d = want
			} else {
				d = db.hi
				n = nb.clamp(int32(math.Floor(limits.hi*float64(d) + eps)))
			}
		}
	}
	return n, d, n != inN || d != inD
}
