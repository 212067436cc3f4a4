package workload

import "testing"

func TestNames(t *testing.T) {
	if got := PodName("sample", 0, "prefill", 1, 0); got != "sample-0-prefill-1-0" {
		t.Fatalf("PodName = %q", got)
	}
	if got := GroupName("sample", 3); got != "sample-3" {
		t.Fatalf("GroupName = %q", got)
	}
	if got := RoleID("decode", 2); got != "decode-2" {
		t.Fatalf("RoleID = %q", got)
	}
	if got := EntryAddress("ms", "ns", 1, "r", 0); got != "ms-1-r-0-0.ns" {
		t.Fatalf("EntryAddress = %q", got)
	}
}

func TestOrdinals(t *testing.T) {
	cases := []struct {
		prefix, name string
		want         int
	}{
		{"ms", "ms-0", 0},
		{"ms", "ms-12", 12},
		{"ms", "ms-", -1},
		{"ms", "ms-01", -1},
		{"ms", "ms-a", -1},
		{"ms", "other-1", -1},
		{"ms-1", "ms-1-3", 3},
		{"prefill", "prefill-4", 4},
		{"prefill", "prefill--4", -1},
	}
	for _, c := range cases {
		if got := ordinalSuffix(c.prefix, c.name); got != c.want {
			t.Errorf("ordinalSuffix(%q,%q) = %d, want %d", c.prefix, c.name, got, c.want)
		}
	}
	if got := WorkerIndex("ms", 0, "r", 1, "ms-0-r-1-3"); got != 3 {
		t.Errorf("WorkerIndex = %d", got)
	}
}
