package e2e

import (
	"net/http"
	"os"
	"testing"
)

// TestRouterMetricsScrapeableAfterTraffic: after the whole suite's traffic
// (LoRA, prefixes, header rules), /metrics still answers 200. It fails today
// with a router bug, so it runs only with KTHENA_E2E_KNOWN_BUGS=1: metric
// label values alias request memory (a model label "ql-lo" cut from
// "sql-lora"), so series collide and /metrics answers 500 ("was collected
// before with the same name and label values").
func TestRouterMetricsScrapeableAfterTraffic(t *testing.T) {
	if os.Getenv("KTHENA_E2E_KNOWN_BUGS") == "" {
		t.Skip("known kthena-router bug (duplicate metric series from aliased label values); set KTHENA_E2E_KNOWN_BUGS=1 to run")
	}
	resp, err := http.Get(routerMetricsURL(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answers %d: %s", resp.StatusCode, metricsExcerpt(t, routerMetricsURL(t)))
	}
}
