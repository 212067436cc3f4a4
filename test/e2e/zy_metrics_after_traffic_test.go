package e2e

import (
	"net/http"
	"testing"
)

// TestRouterMetricsScrapeableAfterTraffic: after the whole suite's traffic
// (LoRA, prefixes, header rules), /metrics still answers 200. It guards a
// router bug this suite found: metric label values aliased pooled request
// memory (a model label "ql-lo" cut from "sql-lora"), so series collided and
// /metrics answered 500. The file name sorts late so the test runs after the
// traffic of the other tests.
func TestRouterMetricsScrapeableAfterTraffic(t *testing.T) {
	resp, err := http.Get(routerMetricsURL(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answers %d: %s", resp.StatusCode, metricsExcerpt(t, routerMetricsURL(t)))
	}
}
