// Package bench holds the router benchmarks as a library: overhead (the same
// load straight to engines and through the router, side by side).
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/router/director"
	"github.com/kthena/kthena/internal/router/runner"
)

// OverheadOptions configure the overhead benchmark.
type OverheadOptions struct {
	Engines     int
	Concurrency int
	Duration    time.Duration
	// PromptBytes are the prompt sizes to run (e.g. 100 and 200 KiB).
	PromptBytes []int
}

// Row is one scenario's result.
type Row struct {
	Scenario             string
	DirectP50, DirectP99 time.Duration
	RouterP50, RouterP99 time.Duration
	DirectRPS, RouterRPS float64
	AddedP50, AddedP99   time.Duration
	Requests             int
}

// echoEngine answers at once, so every microsecond measured above the
// direct path is the router's.
func echoEngine() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	resp := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0.1\n")
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"m"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if bytes.Contains([]byte(r.Header.Get("X-Stream")), []byte("1")) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := 0; i < 4; i++ {
				fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"}}],\"usage\":null}\n\n")
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// RunOverhead runs the benchmark and returns one row per scenario.
func RunOverhead(ctx context.Context, o OverheadOptions) ([]Row, error) {
	var addrs []string
	for i := 0; i < o.Engines; i++ {
		srv, addr, err := echoEngine()
		if err != nil {
			return nil, err
		}
		defer srv.Close()
		addrs = append(addrs, addr)
	}
	dir, err := os.MkdirTemp("", "kthena-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var f strings.Builder
	f.WriteString("kind: ModelServer\nmetadata: {name: s}\nspec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: s}}, workloadPort: {port: 8000}}\n---\n")
	f.WriteString("kind: ModelRoute\nmetadata: {name: r}\nspec: {modelName: m, rules: [{targetModels: [{modelServerName: s}]}]}\n---\nkind: Endpoints\nendpoints:\n")
	for i, a := range addrs {
		fmt.Fprintf(&f, "- {name: e%d, address: %q, labels: {app: s}}\n", i, a)
	}
	path := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(path, []byte(f.String()), 0o644); err != nil {
		return nil, err
	}
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", EndpointsFile: path, ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute})
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Shutdown(context.Background()) }()
	time.Sleep(200 * time.Millisecond) // first scrape

	client := &http.Client{Transport: director.NewTransport()}
	var rows []Row
	for _, pb := range o.PromptBytes {
		for _, stream := range []bool{false, true} {
			body := fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}]}`, stream, strings.Repeat("lorem ipsum ", pb/12))
			name := fmt.Sprintf("%s prompt, %s", size(pb), map[bool]string{false: "non-streaming", true: "streaming"}[stream])
			row := Row{Scenario: name}
			// Alternate direct and routed phases so both see the same machine state.
			var dl, rl []time.Duration
			var dt, rt time.Duration
			for round := 0; round < 2; round++ {
				d, el := load(client, func(i int) string { return "http://" + addrs[i%len(addrs)] }, body, stream, o.Concurrency, o.Duration/4)
				dl, dt = append(dl, d...), dt+el
				rr, el2 := load(client, func(int) string { return "http://" + r.Addr() }, body, stream, o.Concurrency, o.Duration/4)
				rl, rt = append(rl, rr...), rt+el2
			}
			row.DirectP50, row.DirectP99 = pct(dl, 0.5), pct(dl, 0.99)
			row.RouterP50, row.RouterP99 = pct(rl, 0.5), pct(rl, 0.99)
			row.AddedP50, row.AddedP99 = row.RouterP50-row.DirectP50, row.RouterP99-row.DirectP99
			row.DirectRPS, row.RouterRPS = float64(len(dl))/dt.Seconds(), float64(len(rl))/rt.Seconds()
			row.Requests = len(dl) + len(rl)
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func size(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func load(c *http.Client, base func(int) string, body string, stream bool, conc int, d time.Duration) ([]time.Duration, time.Duration) {
	var mu sync.Mutex
	var lat []time.Duration
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			for i := w; time.Now().Before(deadline); i += conc {
				req, _ := http.NewRequest(http.MethodPost, base(i)+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if stream {
					req.Header.Set("X-Stream", "1")
				}
				t0 := time.Now()
				res, err := c.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					local = append(local, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return lat, time.Since(start)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// Markdown renders rows as a table.
func Markdown(rows []Row, o OverheadOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Closed loop, concurrency %d, %d echo engines, %s per scenario (direct and routed phases interleaved in one run).\n\n", o.Concurrency, o.Engines, o.Duration)
	b.WriteString("| scenario | direct p50 | direct p99 | router p50 | router p99 | added p50 | added p99 | direct req/s | router req/s |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f |\n", r.Scenario, ms(r.DirectP50), ms(r.DirectP99), ms(r.RouterP50), ms(r.RouterP99), ms(r.AddedP50), ms(r.AddedP99), r.DirectRPS, r.RouterRPS)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }
