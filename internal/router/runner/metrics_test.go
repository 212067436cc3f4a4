package runner

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMetricsGolden compares the exposition of the counters a request
// updates (after one success, one unknown model and one engine failure)
// with testdata/metrics.golden; -update rewrites it.
func TestMetricsGolden(t *testing.T) {
	good, bad := newEngine(t, "good"), newEngine(t, "bad")
	bad.set(func(e *fakeEngine) { e.status = http.StatusInternalServerError })
	routes := `kind: ModelRoute
metadata: {name: ok}
spec: {modelName: ok, rules: [{targetModels: [{modelServerName: sgood}]}]}
---
kind: ModelRoute
metadata: {name: failing}
spec: {modelName: failing, rules: [{targetModels: [{modelServerName: sbad}]}]}
`
	h := start(t, docs(server("sgood", "real-ok", ""), server("sbad", "", ""), routes,
		endpoints(map[*fakeEngine]string{good: "sgood", bad: "sbad"})), "")
	h.waitScraped(good, bad)
	for model, want := range map[string]int{"ok": 200, "nope": 404, "failing": 502} {
		if r := h.chat(model, nil); r.status != want {
			t.Fatalf("%s: status %d, want %d (%s)", model, r.status, want, r.body)
		}
	}
	names := []string{"kthena_router_requests_total", "kthena_router_tokens_total", "kthena_router_upstream_attempts_total",
		"kthena_router_active_requests", "kthena_router_active_upstream_requests"}
	got, err := gatherText(h, names)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.GatherAndCompare(h.r.Registry, strings.NewReader(string(want)), names...); err != nil {
		t.Fatalf("metrics differ from %s (run with -update after an intended change):\n%v", path, err)
	}
}

// gatherText renders the named families in the text format.
func gatherText(h *harness, names []string) (string, error) {
	mfs, err := h.r.Registry.Gather()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, mf := range mfs {
		if slices.Contains(names, mf.GetName()) {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				return "", err
			}
		}
	}
	return b.String(), nil
}
