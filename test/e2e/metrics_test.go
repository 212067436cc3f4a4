package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
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

// TestRouterMetricsScrapeableAfterTraffic: after traffic of every kind
// that labels the router's series differently (a base model, a LoRA
// adapter, a header rule, streaming and not, an unknown model, long and
// short prompts, concurrent clients), /metrics answers 200 and every model
// label is the model a client sent, whole. It guards a router bug this
// suite found: metric label values aliased pooled request memory (a model
// label "ql-lo" cut from "sql-lora"), so series collided and /metrics
// answered 500. It sends its own traffic, so it runs alone or anywhere in
// the suite.
func TestRouterMetricsScrapeableAfterTraffic(t *testing.T) {
	const label, adapter, unknown = "mtraffic", "mtraffic-sql-lora", "mtraffic-no-such-model"
	ms := simServing(label, label, 2, "--max-loras", "2", "--lora-modules", adapter+"=/adapters/"+adapter)
	route := simpleRoute(label, label, label)
	route.Spec.LoraAdapters = []string{adapter}
	route.Spec.Rules = append([]*networkingv1alpha1.Rule{{
		Name:         "premium",
		ModelMatch:   &networkingv1alpha1.ModelMatch{Headers: map[string]*networkingv1alpha1.StringMatch{"user-type": {Exact: ptr.To("premium")}}},
		TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: label}},
	}}, route.Spec.Rules...)
	create(t, ms, modelServer(label, label), route)
	waitReady(t, label, 2)
	waitServes(t, label)
	waitServes(t, adapter)

	url := routerMetricsURL(t)
	before := map[string]float64{}
	for _, m := range []string{label, adapter} {
		before[m] = metricValue(t, url, "kthena_router_requests_total", `model="`+m+`"`, `status_code="200"`)
	}
	const clients, perClient = 4, 12
	sent := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan string, clients*perClient)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perClient {
				model, headers := label, map[string]string(nil)
				switch i % 4 {
				case 1:
					model = adapter
				case 2:
					headers = map[string]string{"user-type": "premium"}
				}
				prompt := fmt.Sprintf("client %d request %d", c, i)
				if i%3 == 0 {
					prompt = strings.Repeat(fmt.Sprintf("A long shared prefix of client %d. ", c), 40) + prompt
				}
				status, body := routerRequest(model, prompt, i%2 == 1, headers)
				if status != http.StatusOK {
					errs <- fmt.Sprintf("%s %q: %d %s", model, prompt, status, truncate(body, 200))
					continue
				}
				mu.Lock()
				sent[model]++
				mu.Unlock()
			}
			if status, _ := routerRequest(unknown, "nobody serves this", false, nil); status != http.StatusNotFound {
				errs <- fmt.Sprintf("unknown model answered %d, want 404", status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics answers %d after the traffic: %s", resp.StatusCode, truncate(string(data), 2000))
	}
	// Every model label that is a piece of a model sent here must be one
	// of them, whole.
	ours := []string{label, adapter, unknown}
	for _, m := range modelLabels(string(data)) {
		for _, o := range ours {
			if m != o && strings.Contains(o, m) && !slices.Contains(ours, m) {
				t.Errorf("model label %q is cut from %q: label values alias request memory\n%s", m, o, metricsExcerpt(t, url))
			}
		}
	}
	for _, m := range []string{label, adapter} {
		after := metricValue(t, url, "kthena_router_requests_total", `model="`+m+`"`, `status_code="200"`)
		if got := after - before[m]; got < float64(sent[m]) {
			t.Errorf("kthena_router_requests_total{model=%q,status_code=\"200\"} grew by %v, want %d (the answered requests)\n%s", m, got, sent[m], metricsExcerpt(t, url))
		}
	}
	if n := metricValue(t, url, "kthena_router_requests_total", `model="`+unknown+`"`); n < clients {
		t.Errorf("kthena_router_requests_total{model=%q} is %v, want at least %d (the 404s)\n%s", unknown, n, clients, metricsExcerpt(t, url))
	}
}

// routerRequest sends one chat completion through the router, streaming
// or not, and returns the status and the body (the whole stream).
func routerRequest(model, prompt string, stream bool, headers map[string]string) (int, string) {
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 4, "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequest(http.MethodPost, env.routerURL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

var modelLabel = regexp.MustCompile(`[{,]model="([^"]*)"`)

// modelLabels lists the distinct values of the model label of the
// router's kthena_router_* series.
func modelLabels(exposition string) []string {
	var out []string
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, "kthena_router_") {
			continue
		}
		for _, m := range modelLabel.FindAllStringSubmatch(line, -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	return out
}
