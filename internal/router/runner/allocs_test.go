//go:build !race

package runner

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
)

var updateAllocBudget = flag.Bool("update-alloc-budget", false, "rewrite testdata/alloc_budget.json with the measured figures")

// allocBudget is what one request may cost in the router's hot paths.
type allocBudget struct {
	Allocs float64 `json:"allocs"`
	Bytes  float64 `json:"bytes"`
}

// Margins over the committed figures before the guard fails: the counts
// vary by a few tenths between runs (the background scraper, pools), so
// one more allocation per request fails the guard.
const (
	allocSlack  = 0.8  // allocations per request
	bytesMargin = 1.03 // and 128 bytes
)

// TestAllocationBudget is the router's performance guard: allocations and
// bytes per request of the in-process serve path (the BenchmarkServe rig),
// against testdata/alloc_budget.json. Counts do not depend on the
// machine's speed or load, so unlike timings they can fail a build. After
// a deliberate change, rerun with -update-alloc-budget and commit the file.
func TestAllocationBudget(t *testing.T) {
	g := newServeRig(t)
	cases := map[string]struct {
		body   string
		stream bool
	}{
		"chat, 100 B prompt":    {chatBody(100, false), false},
		"chat, 200 KiB prompt":  {chatBody(200<<10, false), false},
		"chat, streamed answer": {chatBody(100, true), true},
	}
	measured := map[string]allocBudget{}
	for name, c := range cases {
		for range 50 { // warm pools and connections
			g.serve(t, c.body, c.stream)
		}
		// The least of three batches: a collection during a batch empties
		// the pools, whose refill (a 200 KiB body buffer) only ever adds.
		const n = 400
		best := allocBudget{Allocs: math.Inf(1), Bytes: math.Inf(1)}
		for range 3 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range n {
				g.serve(t, c.body, c.stream)
			}
			runtime.ReadMemStats(&after)
			best.Allocs = min(best.Allocs, float64(after.Mallocs-before.Mallocs)/n)
			best.Bytes = min(best.Bytes, float64(after.TotalAlloc-before.TotalAlloc)/n)
		}
		measured[name] = best
	}
	file := filepath.Join("testdata", "alloc_budget.json")
	if *updateAllocBudget {
		out := map[string]allocBudget{}
		for k, v := range measured {
			out[k] = allocBudget{Allocs: float64(int(v.Allocs + 0.5)), Bytes: float64(int(v.Bytes + 0.5))}
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
	var budget map[string]allocBudget
	if err := json.Unmarshal(data, &budget); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		got, want := measured[name], budget[name]
		if want.Allocs == 0 {
			t.Errorf("%s: no budget in %s", name, file)
			continue
		}
		t.Logf("%-22s %6.1f allocs (budget %3.0f), %8.0f B (budget %6.0f)", name, got.Allocs, want.Allocs, got.Bytes, want.Bytes)
		if got.Allocs > want.Allocs+allocSlack {
			t.Errorf("%s: %.1f allocations per request, budget %.0f: a regression (or rerun with -update-alloc-budget after a deliberate change)", name, got.Allocs, want.Allocs)
		}
		if got.Bytes > want.Bytes*bytesMargin+128 {
			t.Errorf("%s: %.0f bytes per request, budget %.0f: %s", name, got.Bytes, want.Bytes, fmt.Sprintf("%+.0f%%", 100*(got.Bytes/want.Bytes-1)))
		}
	}
}
