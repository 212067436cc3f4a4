package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRouterMetrics: the router's request counter moves with traffic.
func TestRouterMetrics(t *testing.T) {
	create(t, simServing("metrics", "metrics", 1), modelServer("metrics", "metrics"), simpleRoute("metrics", "metrics", "metrics"))
	waitReady(t, "metrics", 1)
	waitServes(t, "metrics")
	url := routerMetricsURL(t)
	before := counterSum(t, url, "kthena_router_requests_total")
	for i := range 5 {
		if r := chat(t, "metrics", fmt.Sprintf("count me %d", i), nil); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	eventually(t, 10*time.Second, "kthena_router_requests_total grows by 5", func() error {
		if after := counterSum(t, url, "kthena_router_requests_total"); after < before+5 {
			return fmt.Errorf("before %v, after %v; %s serves:\n%s", before, after, url, metricsExcerpt(t, url))
		}
		return nil
	})
}

func routerMetricsURL(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(env.stateDir, "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ports struct {
		RouterMetrics int `json:"routerMetrics"`
	}
	if err := json.Unmarshal(data, &ports); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/metrics", ports.RouterMetrics)
}
