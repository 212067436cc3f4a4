package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/fairness"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/testing/realserver"
	"github.com/kthena/kthena/internal/tokenizer"
)

// LatencyStats are percentiles of one path's request latency.
type LatencyStats struct {
	P50, P90, P99 time.Duration
	N             int
}

func latencyStats(d []time.Duration) LatencyStats {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x)
	}
	if len(v) == 0 {
		return LatencyStats{}
	}
	return LatencyStats{P50: time.Duration(quantile(v, .5)), P90: time.Duration(quantile(v, .9)), P99: time.Duration(quantile(v, .99)), N: len(v)}
}

// QueueOverhead is the latency of requests that find the queue empty:
// straight to the engine, through a router without the fair queue and
// through one with it (Kthena's default fairness settings), interleaved
// one request at a time in the same run; and the queue's own Admit +
// Release on an empty queue, timed in a loop.
type QueueOverhead struct {
	Direct, Off, On LatencyStats
	AdmitRelease    time.Duration
}

// fastFleet starts engines that answer at once (1 ms steps).
func fastFleet(ctx context.Context, n int, tok *tokenizer.Tokenizer) (*sim.Fleet, string, error) {
	cfgs := make([]sim.Config, n)
	for i := range cfgs {
		cfgs[i] = sim.Config{Seed: int64(i + 1), TimeToFirstToken: time.Millisecond, InterTokenLatency: time.Millisecond}.WithDefaults()
	}
	f, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	if err != nil {
		return nil, "", err
	}
	return f, cfgs[0].Model, nil
}

func postOnce(ctx context.Context, c *http.Client, url string, body []byte, hdr http.Header) (int, time.Duration, error) {
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), nil
}

func measureQueueOverhead(ctx context.Context, o FairnessOptions, tok *tokenizer.Tokenizer) (*QueueOverhead, error) {
	fleet, model, err := fastFleet(ctx, 1, tok)
	if err != nil {
		return nil, err
	}
	defer fleet.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	off, stopOff, err := startBenchRouter(ctx, client, fleet, model, "", fairRouterConfig(fairPolicyFCFS, 0))
	if err != nil {
		return nil, err
	}
	defer stopOff()
	on, stopOn, err := startBenchRouter(ctx, client, fleet, model, "", fairRouterConfig(fairPolicyKthenaSig, 0))
	if err != nil {
		return nil, err
	}
	defer stopOn()
	routed := []byte(`{"model":"bench","max_tokens":1,"messages":[{"role":"user","content":"hello there"}]}`)
	direct := bytes.Replace(routed, []byte(`"bench"`), []byte(strconv.Quote(model)), 1)
	hdr := http.Header{}
	hdr.Set(fairTenantHeader, "t1")
	paths := []struct {
		url  string
		body []byte
		lat  []time.Duration
	}{
		{url: fleet.URL(0) + "/v1/chat/completions", body: direct},
		{url: "http://" + off.Addr() + "/v1/chat/completions", body: routed},
		{url: "http://" + on.Addr() + "/v1/chat/completions", body: routed},
	}
	// Warm up connections and the routers' first scrape.
	time.Sleep(1500 * time.Millisecond)
	for i := 0; i < o.OverheadRequests+50; i++ {
		for k := range paths {
			p := &paths[(i+k)%len(paths)] // rotate the order
			code, d, err := postOnce(ctx, client, p.url, p.body, hdr)
			if err != nil {
				return nil, err
			}
			if code != http.StatusOK {
				return nil, fmt.Errorf("%s: status %d", p.url, code)
			}
			if i >= 50 {
				p.lat = append(p.lat, d)
			}
		}
	}
	ov := &QueueOverhead{Direct: latencyStats(paths[0].lat), Off: latencyStats(paths[1].lat), On: latencyStats(paths[2].lat)}
	ov.AdmitRelease = admitReleaseCost()
	return ov, nil
}

// admitReleaseCost times Admit and Release of one request on an empty
// queue with free capacity (the router's work per request when nothing
// waits).
func admitReleaseCost() time.Duration {
	q := fairness.New(fairness.Settings{MaxQueued: 1000, MaxQueuedPerTenant: 200, Timeout: time.Minute, InputWeight: 1, OutputWeight: 2}, nil)
	ctx := context.Background()
	free := func() int { return math.MaxInt }
	const n = 200000
	start := time.Now()
	for i := 0; i < n; i++ {
		t, _, err := q.Admit(ctx, "ms", "t1", 0, 50, free)
		if err != nil {
			return -1
		}
		t.Release(20)
	}
	return time.Since(start) / n
}

// LimitRow is one rate-limit measurement: clients offer about twice the
// limit for a while; the tokens admitted are compared with what the
// limit allows over the same span (a full bucket plus the refill).
type LimitRow struct {
	Mode             string // local or global
	Routers          int
	Limit            int // input tokens per second
	TokensPerRequest int // as the router counts them
	Span             time.Duration
	Sent, Admitted   int
	R429             int
	Expected         float64 // tokens the limit allows over the span
	Measured         float64 // tokens admitted
}

// Error is the relative error of the admitted tokens.
func (r LimitRow) Error() float64 { return r.Measured/max(r.Expected, 1) - 1 }

func measureLimits(ctx context.Context, o FairnessOptions, tok *tokenizer.Tokenizer, progress func(string, ...any)) ([]LimitRow, error) {
	dir, err := os.MkdirTemp("", "kthena-fairbench-redis-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	srv, err := realserver.LaunchRedis(dir)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	addr := srv.Addr
	const limit = 2000
	var rows []LimitRow
	for _, m := range []struct {
		mode    string
		routers int
	}{{"local", 1}, {"global", 2}} {
		began := time.Now()
		row, err := measureLimit(ctx, o, tok, m.mode, m.routers, limit, addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.mode, err)
		}
		rows = append(rows, row)
		progress("rate limit %s, %d router(s): %d of %d requests admitted, %.0f tokens vs %.0f allowed (%+.2f %%) (%s)",
			m.mode, m.routers, row.Admitted, row.Sent, row.Measured, row.Expected, 100*row.Error(), time.Since(began).Round(time.Second))
	}
	return rows, nil
}

func measureLimit(ctx context.Context, o FairnessOptions, tok *tokenizer.Tokenizer, mode string, routers, limit int, redisAddr string) (LimitRow, error) {
	fleet, model, err := fastFleet(ctx, 2, tok)
	if err != nil {
		return LimitRow{}, err
	}
	defer fleet.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}}
	defer client.CloseIdleConnections()
	rl := fmt.Sprintf(", rateLimit: {inputTokensPerUnit: %d, unit: second}", limit)
	if mode == "global" {
		rl = fmt.Sprintf(", rateLimit: {inputTokensPerUnit: %d, unit: second, global: {redis: {address: %q}}}", limit, redisAddr)
	}
	var urls []string
	for range routers {
		r, stop, err := startBenchRouter(ctx, client, fleet, model, rl, fairRouterConfig(fairPolicyFCFS, 0))
		if err != nil {
			return LimitRow{}, err
		}
		defer stop()
		urls = append(urls, "http://"+r.Addr()+"/v1/chat/completions")
	}
	body := []byte(`{"model":"bench","max_tokens":1,"messages":[{"role":"user","content":"` + words(rand.New(rand.NewPCG(3, 7)), 100) + `"}]}`)
	p, err := openai.Parse(body, 8192)
	if err != nil {
		return LimitRow{}, err
	}
	k := (p.PromptBytes + 3) / 4 // the router's count without a tokenizer
	rate := 2 * float64(limit) / float64(k)
	interval := time.Duration(float64(time.Second) / rate)
	hdr := http.Header{}
	row := LimitRow{Mode: mode, Routers: routers, Limit: limit, TokensPerRequest: k}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var first, last time.Time
	start := time.Now()
	for i := 0; time.Since(start) < o.LimitDuration; i++ {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		now := time.Now()
		if i == 0 {
			first = now
		}
		last = now
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := postOnce(ctx, client, urls[i%len(urls)], body, hdr)
			mu.Lock()
			defer mu.Unlock()
			row.Sent++
			switch {
			case err != nil:
			case code == http.StatusOK:
				row.Admitted++
			case code == http.StatusTooManyRequests:
				row.R429++
			}
		}()
	}
	wg.Wait()
	row.Span = last.Sub(first)
	row.Expected = float64(limit) * (1 + row.Span.Seconds())
	row.Measured = float64(row.Admitted * k)
	return row, nil
}
