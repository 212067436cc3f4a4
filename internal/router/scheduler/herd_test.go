package scheduler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/testing/simroute"
)

// These tests run a router in standalone mode in front of simulated engines
// (internal/sim), all on real sockets, and count where requests land.

const (
	cfgLeastRequest = "scheduler:\n  plugins:\n    Filter: {enabled: [least-request]}\n    Score: {enabled: [least-request]}\n"
	cfgGPUUsage     = "scheduler:\n  plugins:\n    Score: {enabled: [gpu-usage]}\n"
	cfgLeastLatency = "scheduler:\n  plugins:\n    Score: {enabled: [least-latency]}\n"
)

type rig struct {
	fleet  *sim.Fleet
	router *runner.Router
	url    string
	client *http.Client
}

func startRig(t *testing.T, engines int, cfg string, scrape time.Duration) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfgs := make([]sim.Config, engines)
	for i := range cfgs {
		cfgs[i] = sim.Config{Seed: int64(i + 1)}.WithDefaults()
	}
	f, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard()}, cfgs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	epFile, cfgFile, err := simroute.Fleet{Model: cfgs[0].Model, Route: "m", Addrs: f.Addrs}.Write(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile, ScrapeInterval: scrape,
		MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	g := &rig{fleet: f, router: r, url: "http://" + r.Addr() + "/v1/chat/completions", client: &http.Client{}}
	g.waitFor(t, "router ready", func() bool {
		res, err := g.client.Get("http://" + r.Addr() + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return g
}

func (g *rig) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func body(model, prompt string, maxTokens int) []byte {
	b, _ := json.Marshal(map[string]any{"model": model, "max_tokens": maxTokens, "ignore_eos": true,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	return b
}

// post sends one request to url and waits for the whole answer.
func post(ctx context.Context, c *http.Client, url string, b []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// arrivals is every request each engine has taken so far.
func (g *rig) arrivals() []int64 {
	out := make([]int64, len(g.fleet.Engines))
	for i, e := range g.fleet.Engines {
		st := e.Stats()
		out[i] = st.Totals.FinishedRequests + int64(st.Running+st.Waiting)
	}
	return out
}

func diff(a, b []int64) []int64 {
	out := make([]int64, len(a))
	for i := range a {
		out[i] = b[i] - a[i]
	}
	return out
}

// TestBurstBetweenScrapesSpreads: engine 0 is idle and fast, the others
// each run six long requests (sent to them directly), so the last scrape
// says engine 0 has the most free KV cache, the lowest latency and the
// fewest running requests. A burst of 40 concurrent requests must still
// spread: no engine takes more than half of it. Before the scorers counted
// what the router sent since the scrape, gpu-usage and least-latency sent
// all 40 to engine 0.
func TestBurstBetweenScrapesSpreads(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	for _, c := range []struct{ name, cfg string }{{"least-request", cfgLeastRequest}, {"gpu-usage", cfgGPUUsage}, {"least-latency", cfgLeastLatency}} {
		t.Run(c.name, func(t *testing.T) {
			g := startRig(t, 4, c.cfg, 200*time.Millisecond)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			model := g.fleet.Engines[0].Config().Model
			long := body(model, strings.Repeat("a long shared document ", 300), 20000)
			for i := 1; i < 4; i++ {
				for range 6 {
					go func() { _ = post(ctx, g.client, g.fleet.URL(i)+"/v1/chat/completions", long) }()
				}
			}
			if err := post(ctx, g.client, g.fleet.URL(0)+"/v1/chat/completions", body(model, "hello", 4)); err != nil {
				t.Fatal(err)
			}
			// Wait until the router has scraped latency data from every
			// engine and sees the long requests running.
			g.waitFor(t, "scraped state", func() bool {
				for i, ep := range g.router.Store.AllEndpoints() {
					m := ep.Metrics()
					if m.TTFT <= 0 || m.TPOT <= 0 || (i > 0 && m.Running < 6) {
						return false
					}
				}
				return true
			})
			before := g.arrivals()
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- post(ctx, g.client, g.url, body("m", "a short question", 16))
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got := diff(before, g.arrivals())
			t.Logf("burst of 40 per engine: %v", got)
			served := 0
			for _, n := range got {
				if n > 20 {
					t.Fatalf("one engine took %d of 40: %v", n, got)
				}
				if n > 0 {
					served++
				}
			}
			if served < 3 {
				t.Fatalf("the burst reached %d engines: %v", served, got)
			}
		})
	}
}

// TestEnginesWithoutLatencyDataGetTraffic: only engine 0 has latency data;
// least-latency must still send requests to the others, which then report
// latency too. Before, the only engine with data scored 1 and the others
// 0.5, so every request went to engine 0 for ever.
func TestEnginesWithoutLatencyDataGetTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	g := startRig(t, 4, cfgLeastLatency, 100*time.Millisecond)
	ctx := context.Background()
	model := g.fleet.Engines[0].Config().Model
	if err := post(ctx, g.client, g.fleet.URL(0)+"/v1/chat/completions", body(model, "hello", 4)); err != nil {
		t.Fatal(err)
	}
	g.waitFor(t, "engine 0's latency data", func() bool { return g.router.Store.AllEndpoints()[0].Metrics().TTFT > 0 })
	before := g.arrivals()
	g.waitFor(t, "latency data from every engine", func() bool {
		if err := post(ctx, g.client, g.url, body("m", "a short question", 4)); err != nil {
			t.Fatal(err)
		}
		for _, ep := range g.router.Store.AllEndpoints() {
			if ep.Metrics().TTFT <= 0 {
				return false
			}
		}
		return true
	})
	t.Logf("requests per engine until all had data: %v", diff(before, g.arrivals()))
}

// TestEqualScoresSpread: on an idle fleet every engine scores the same for
// every plugin; one request at a time must not always go to the same one.
func TestEqualScoresSpread(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	for _, c := range []struct{ name, cfg string }{{"least-request", cfgLeastRequest}, {"gpu-usage", cfgGPUUsage}, {"least-latency", cfgLeastLatency}} {
		t.Run(c.name, func(t *testing.T) {
			g := startRig(t, 4, c.cfg, time.Hour) // one scrape: equal, stale-free
			before := g.arrivals()
			for range 40 {
				if err := post(context.Background(), g.client, g.url, body("m", "hi", 1)); err != nil {
					t.Fatal(err)
				}
			}
			got := diff(before, g.arrivals())
			t.Logf("40 sequential requests per engine: %v", got)
			for _, n := range got {
				if n == 0 || n > 25 {
					t.Fatalf("equal engines, unequal shares: %v", got)
				}
			}
		})
	}
}
