package chart

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kthena/kthena/internal/testing/controlplane"
)

// TestGrafanaDashboard: with grafana.dashboards.enabled the chart renders
// one ConfigMap labelled for Grafana's sidecar holding the dashboard; every
// panel query parses as PromQL (promtool, from the prometheus package
// hack/system-deps.sh installs) and names only metrics that Kthena's code
// exports (kthena_*) or that real vLLM exposes (vllm:*, from the golden list
// the simulator is checked against).
func TestGrafanaDashboard(t *testing.T) {
	if n := countKind(render(t), "ConfigMap", "kthena-dashboards"); n != 0 {
		t.Fatalf("dashboard rendered while disabled")
	}
	objs := render(t, "grafana.dashboards.enabled=true", "grafana.dashboards.namespace=monitoring")
	var data string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "kthena-dashboards" {
			if o.GetNamespace() != "monitoring" || o.GetLabels()["grafana_dashboard"] != "1" {
				t.Fatalf("dashboard ConfigMap in %q with labels %v", o.GetNamespace(), o.GetLabels())
			}
			data, _, _ = unstructured.NestedString(o.Object, "data", "kthena.json")
		}
	}
	if data == "" {
		t.Fatal("no dashboard ConfigMap with kthena.json")
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(data), &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) < 20 {
		t.Fatalf("%d queries", len(exprs))
	}

	checkPromQL(t, exprs)

	known := exportedMetrics(t)
	ref := regexp.MustCompile(`\b(kthena_[a-z_]+|vllm:[a-z_:]+)`)
	for _, e := range exprs {
		for _, m := range ref.FindAllString(e, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			if !known[base] && !known[m] {
				t.Errorf("query %q names %s, which nothing exports", e, m)
			}
		}
	}
}

func countKind(objs []*unstructured.Unstructured, kind, name string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			n++
		}
	}
	return n
}

// checkPromQL has promtool parse every query, as recording rules (the
// Grafana variables replaced by what they expand to).
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed: run hack/system-deps.sh (make test does): %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$model_server", ".*", "$model", ".*", "$policy", ".*")
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(vars.Replace(e))
		fmt.Fprintf(&b, "  - record: dashboard:query%d\n    expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool rejects a dashboard query: %v\n%s", err, out)
	}
}

// exportedMetrics are the metric names in Kthena's code (string literals
// kthena_* in non-test Go files under internal/) and in real vLLM's list.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	lit := regexp.MustCompile(`"(kthena_[a-z_]+)"`)
	root := controlplane.RepoRoot()
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			known[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "internal", "sim", "testdata", "metrics_vllm.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && !strings.HasPrefix(fields[0], "#") {
			known[fields[0]] = true
		}
	}
	if !known["kthena_router_requests_total"] || !known["kthena_autoscaling_desired_replicas"] || !known["vllm:kv_cache_usage_perc"] {
		t.Fatalf("metric discovery found too little: %d names", len(known))
	}
	return known
}
