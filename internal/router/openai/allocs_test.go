//go:build !race

package openai

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var updateAllocBudget = flag.Bool("update-alloc-budget", false, "rewrite testdata/alloc_budget.json with the measured figures")

type allocBudget struct {
	Allocs float64 `json:"allocs"`
	Bytes  float64 `json:"bytes"`
}

// The same margins as the router's serve-path guard (runner): one more
// allocation per parse, or 3 % and 128 bytes more, fails.
const (
	allocSlack  = 0.8
	bytesMargin = 1.03
)

// parseBodies are BenchmarkParse's bodies and a small chat request.
func parseBodies() map[string][]byte {
	plain := strings.Repeat("lorem ipsum ", 200<<10/12)
	lines := strings.Repeat(strings.Repeat("x", 79)+"\n", 200<<10/80)
	chat := func(text string) []byte {
		return []byte(fmt.Sprintf(`{"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}],"model":"m","stream":true}`, text))
	}
	return map[string][]byte{
		"chat, 200 KiB plain prompt":    chat(plain),
		"chat, 200 KiB prompt of lines": chat(lines),
		"chat, 100 B prompt":            chat(strings.Repeat("lorem ipsum ", 8)),
	}
}

// TestParseAllocationBudget guards Parse's allocations and bytes per call
// (BenchmarkParse's bodies) against testdata/alloc_budget.json, as
// TestAllocationBudget does for the whole serve path. After a deliberate
// change: go test ./internal/router/openai -run TestParseAllocationBudget
// -args -update-alloc-budget.
func TestParseAllocationBudget(t *testing.T) {
	measured := map[string]allocBudget{}
	for name, body := range parseBodies() {
		parse := func() {
			if r, err := Parse(body, 8192); err != nil || r.Model != "m" {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for range 20 {
			parse()
		}
		const n = 200
		best := allocBudget{Allocs: math.Inf(1), Bytes: math.Inf(1)}
		for range 3 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range n {
				parse()
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
			out[k] = allocBudget{Allocs: math.Round(v.Allocs), Bytes: math.Round(v.Bytes)}
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
	names := make([]string, 0, len(measured))
	for n := range measured {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		got, want := measured[name], budget[name]
		if want.Allocs == 0 {
			t.Errorf("%s: no budget in %s", name, file)
			continue
		}
		t.Logf("%-30s %5.1f allocs (budget %2.0f), %7.0f B (budget %6.0f)", name, got.Allocs, want.Allocs, got.Bytes, want.Bytes)
		if got.Allocs > want.Allocs+allocSlack {
			t.Errorf("%s: %.1f allocations per parse, budget %.0f: a regression (or rerun with -update-alloc-budget after a deliberate change)", name, got.Allocs, want.Allocs)
		}
		if got.Bytes > want.Bytes*bytesMargin+128 {
			t.Errorf("%s: %.0f bytes per parse, budget %.0f: %+.0f%%", name, got.Bytes, want.Bytes, 100*(got.Bytes/want.Bytes-1))
		}
	}
}
