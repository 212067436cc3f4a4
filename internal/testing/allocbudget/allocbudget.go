// Package allocbudget guards allocations and bytes per operation against a
// committed testdata file. Counts do not depend on the machine's speed or
// load, so unlike timings they can fail a build. After a deliberate change,
// rerun the test with -args -update-alloc-budget and commit the file.
package allocbudget

import (
	"encoding/json"
	"flag"
	"math"
	"os"
	"runtime"
	"slices"
	"testing"
)

var update = flag.Bool("update-alloc-budget", false, "rewrite testdata/alloc_budget.json with the measured figures")

// Cost is what one operation allocates; also the budget file's format.
type Cost struct {
	Allocs float64 `json:"allocs"`
	Bytes  float64 `json:"bytes"`
}

// Margins over the committed figures before the guard fails: the counts
// vary by a few tenths between runs (background goroutines, pools), so one
// more allocation per operation, or 3 % and 128 bytes more, fails.
const (
	allocSlack  = 0.8
	bytesMargin = 1.03
	bytesSlack  = 128
)

// Measure runs op warm times, then three batches of n, and returns the
// least cost per call: a collection during a batch empties the pools,
// whose refill only ever adds.
func Measure(warm, n int, op func()) Cost {
	for range warm {
		op()
	}
	best := Cost{Allocs: math.Inf(1), Bytes: math.Inf(1)}
	for range 3 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range n {
			op()
		}
		runtime.ReadMemStats(&after)
		best.Allocs = min(best.Allocs, float64(after.Mallocs-before.Mallocs)/float64(n))
		best.Bytes = min(best.Bytes, float64(after.TotalAlloc-before.TotalAlloc)/float64(n))
	}
	return best
}

// Check compares measured (by case name) with the budget in file, or
// rewrites file with -update-alloc-budget. per names the operation in
// failure messages ("parse", "request").
func Check(t *testing.T, file, per string, measured map[string]Cost) {
	t.Helper()
	if *update {
		out := map[string]Cost{}
		for k, v := range measured {
			out[k] = Cost{Allocs: math.Round(v.Allocs), Bytes: math.Round(v.Bytes)}
		}
		data, _ := json.MarshalIndent(out, "", "  ")
		if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (create it with -update-alloc-budget)", err)
	}
	var budget map[string]Cost
	if err := json.Unmarshal(data, &budget); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(measured))
	width := 0
	for n := range measured {
		names = append(names, n)
		width = max(width, len(n))
	}
	slices.Sort(names)
	for _, name := range names {
		got, want := measured[name], budget[name]
		if want.Allocs == 0 {
			t.Errorf("%s: no budget in %s", name, file)
			continue
		}
		t.Logf("%-*s %6.1f allocs (budget %3.0f), %8.0f B (budget %6.0f)", width, name, got.Allocs, want.Allocs, got.Bytes, want.Bytes)
		if got.Allocs > want.Allocs+allocSlack {
			t.Errorf("%s: %.1f allocations per %s, budget %.0f: a regression (or rerun with -update-alloc-budget after a deliberate change)", name, got.Allocs, per, want.Allocs)
		}
		if got.Bytes > want.Bytes*bytesMargin+bytesSlack {
			t.Errorf("%s: %.0f bytes per %s, budget %.0f: %+.0f%%", name, got.Bytes, per, want.Bytes, 100*(got.Bytes/want.Bytes-1))
		}
	}
}
