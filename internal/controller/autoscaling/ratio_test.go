package autoscaling

import "testing"

func TestRepairRoles(t *testing.T) {
	wide := bounds{0, 10}
	cases := []struct {
		name         string
		num, den     int32
		nb, db       bounds
		limits       *ratioLimits
		wantN, wantD int32
		adjusted     bool
	}{
		{"both zero stay zero", 0, 0, wide, wide, &ratioLimits{1, 2}, 0, 0, false},
		{"one zero is raised", 0, 3, wide, wide, nil, 1, 3, true},
		{"other zero is raised to its minimum", 2, 0, wide, bounds{0, 10}, nil, 2, 1, true},
		{"within ratio untouched", 2, 2, wide, wide, &ratioLimits{0.5, 2}, 2, 2, false},
		{"below minimum raises numerator", 1, 4, wide, wide, &ratioLimits{0.5, 2}, 2, 4, true},
		{"above maximum raises denominator", 6, 2, wide, wide, &ratioLimits{0.5, 2}, 6, 3, true},
		{"numerator at max lowers denominator", 1, 8, bounds{0, 2}, wide, &ratioLimits{0.5, 2}, 2, 4, true},
		{"denominator at max lowers numerator", 9, 2, wide, bounds{0, 3}, &ratioLimits{0.5, 2}, 6, 3, true},
		{"bounds are not an adjustment", 20, 0, wide, bounds{1, 10}, nil, 10, 1, false},
		{"one zero raised, then ratio", 0, 6, wide, wide, &ratioLimits{0.5, 2}, 3, 6, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, d, adj := repairRoles(c.num, c.den, c.nb, c.db, c.limits)
			if n != c.wantN || d != c.wantD || adj != c.adjusted {
				t.Errorf("repairRoles = %d, %d, %v; want %d, %d, %v", n, d, adj, c.wantN, c.wantD, c.adjusted)
			}
		})
	}
}
