//go:build !race

package runner

import (
	"path/filepath"
	"testing"

	"github.com/kthena/kthena/internal/testing/allocbudget"
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
	measured := map[string]allocbudget.Cost{}
	for name, c := range cases {
		// 50 warm-up requests fill the pools and connections.
		measured[name] = allocbudget.Measure(50, 400, func() { g.serve(t, c.body, c.stream) })
	}
	allocbudget.Check(t, filepath.Join("testdata", "alloc_budget.json"), "request", measured)
}
