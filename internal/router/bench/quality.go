package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Workload is an open-loop request stream in simulated time.
type Workload struct {
	Name string
	// Groups share a system prompt of SystemTokens; each group sends
	// PerGroup requests with its own question.
	Groups, PerGroup int
	SystemTokens     int
	QuestionTokens   int // mean; ±30 % uniform
	OutputTokens     int // mean; ±30 % uniform
	// Rate is the Poisson arrival rate in requests per simulated second.
	Rate float64
	Seed uint64
}

// Workloads are the quality bench's defaults: the field's shared-prefix
// "C" shape (150 groups × 5, 6,000-token system prompts, 1,200-token
// questions; llm-d, GIE) with outputs shortened from 1,000 to 200 tokens to
// keep the run short on a laptop, and a short-prompt chat mix without shared
// prefixes, where only load balancing matters.
func Workloads() []Workload {
	return []Workload{
		{Name: "long shared prefix (150×5, sys 6000, q 1200, out 200)", Groups: 150, PerGroup: 5, SystemTokens: 6000, QuestionTokens: 1200, OutputTokens: 200, Rate: 12, Seed: 1},
		{Name: "short prompts (no sharing, in 400, out 200)", Groups: 600, PerGroup: 1, SystemTokens: 0, QuestionTokens: 400, OutputTokens: 200, Rate: 30, Seed: 2},
	}
}

// Policy is a routing policy under test: a router configuration, or the
// oracle (no router: the client reads every engine's cache).
type Policy struct {
	Name   string
	Config string // "" = oracle
}

func scoreOnly(name string) string {
	return "scheduler:\n  plugins:\n    Score:\n      enabled:\n      - " + name + "\n"
}

// Policies are the baselines, upstream's Helm blend, Kthena's default and
// the oracle.
func Policies() []Policy {
	return []Policy{
		{"random", scoreOnly("random")},
		{"round-robin", scoreOnly("round-robin")},
		{"least-request", "scheduler:\n  plugins:\n    Filter:\n      enabled: [least-request]\n    Score:\n      enabled: [least-request]\n"},
		{"upstream default", config.UpstreamDefault},
		{"kthena default", config.Default},
		{"oracle", ""},
	}
}

// QualityOptions configure the run.
type QualityOptions struct {
	Engines   int
	Profile   string
	TimeScale float64
	Workloads []Workload
	Policies  []Policy
	Log       logr.Logger
}

// QualityRow is one policy on one workload; times are simulated.
type QualityRow struct {
	Workload, Policy  string
	Requests, OK      int
	OutputTokPerSec   float64
	TTFTP50, TTFTP90  float64 // seconds
	E2EP90            float64
	HitRate           float64 // cached prompt tokens / prompt tokens
	PerEngineRequests []int
}

type request struct {
	at        float64 // simulated seconds from start
	system, q string
	maxTokens int
}

var vocab = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will can more about out up
them some could what into than time only other new two may first then do any like my now over such our man me even
most made after also did many before must through back years where much your way well down should because each just
those people how too little state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go came right used take
three`)

func words(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocab[r.IntN(len(vocab))])
	}
	return b.String()
}

func jitter(r *rand.Rand, mean int) int { return max(1, int(float64(mean)*(0.7+0.6*r.Float64()))) }

// Requests generates the workload: groups interleaved in random order, with
// exponential inter-arrival times.
func (w Workload) Requests() []request {
	r := rand.New(rand.NewPCG(w.Seed, 7))
	systems := make([]string, w.Groups)
	for g := range systems {
		if w.SystemTokens > 0 {
			systems[g] = fmt.Sprintf("You are assistant %d. ", g) + words(r, w.SystemTokens)
		}
	}
	var reqs []request
	for g := 0; g < w.Groups; g++ {
		for i := 0; i < w.PerGroup; i++ {
			reqs = append(reqs, request{system: systems[g], q: words(r, jitter(r, w.QuestionTokens)), maxTokens: jitter(r, w.OutputTokens)})
		}
	}
	r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	t := 0.0
	for i := range reqs {
		t += r.ExpFloat64() / w.Rate
		reqs[i].at = t
	}
	return reqs
}

func (q request) messages() []tokenizer.Message {
	var m []tokenizer.Message
	if q.system != "" {
		m = append(m, tokenizer.Message{Role: "system", Content: q.system})
	}
	return append(m, tokenizer.Message{Role: "user", Content: q.q})
}

func (q request) body(model string) []byte {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var ms []msg
	for _, m := range q.messages() {
		ms = append(ms, msg{m.Role, m.Content})
	}
	b, _ := json.Marshal(map[string]any{"model": model, "messages": ms, "max_tokens": q.maxTokens, "ignore_eos": true,
		"stream": true, "stream_options": map[string]bool{"include_usage": true}})
	return b
}

type result struct {
	ok                        bool
	start, ttft, end          time.Duration
	prompt, cached, completed int
}

// RunQuality runs every policy on every workload, each on a fresh fleet
// (cold caches) and a fresh router.
func RunQuality(ctx context.Context, o QualityOptions) ([]QualityRow, error) {
	var rows []QualityRow
	for _, w := range o.Workloads {
		reqs := w.Requests()
		for _, p := range o.Policies {
			row, err := runPolicy(ctx, o, w, p, reqs)
			if err != nil {
				return nil, fmt.Errorf("%s / %s: %w", w.Name, p.Name, err)
			}
			o.Log.Info("policy done", "workload", w.Name, "policy", p.Name, "hitRate", row.HitRate, "ttftP90", row.TTFTP90)
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runPolicy(ctx context.Context, o QualityOptions, w Workload, p Policy, reqs []request) (QualityRow, error) {
	cfgs := make([]sim.Config, o.Engines)
	for i := range cfgs {
		cfgs[i] = sim.Config{Profile: o.Profile, TimeScale: o.TimeScale, Seed: int64(i + 1)}.WithDefaults()
	}
	fleet, err := sim.StartLocal(ctx, logr.Discard(), cfgs...)
	if err != nil {
		return QualityRow{}, err
	}
	defer fleet.Close()
	model := cfgs[0].Model
	ts := o.TimeScale
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}}

	var target func(q request) (url string, done func())
	if p.Config == "" {
		target = oracle(fleet)
	} else {
		dir, err := os.MkdirTemp("", "kthena-quality-")
		if err != nil {
			return QualityRow{}, err
		}
		defer os.RemoveAll(dir)
		var eps strings.Builder
		eps.WriteString("kind: Endpoints\nendpoints:\n")
		for i, a := range fleet.Addrs {
			fmt.Fprintf(&eps, "- {name: e%d, address: %q, labels: {app: sim}}\n", i, a)
		}
		file := fmt.Sprintf(`kind: ModelServer
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: sim}
spec: {model: %s, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: sim}}, workloadPort: {port: 8000}}
---
kind: ModelRoute
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: bench}
spec: {modelName: bench, rules: [{targetModels: [{modelServerName: sim}]}]}
---
%s`, model, eps.String())
		epFile, cfgFile := filepath.Join(dir, "endpoints.yaml"), filepath.Join(dir, "router.yaml")
		if err := os.WriteFile(epFile, []byte(file), 0o644); err != nil {
			return QualityRow{}, err
		}
		if err := os.WriteFile(cfgFile, []byte(p.Config), 0o644); err != nil {
			return QualityRow{}, err
		}
		r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile,
			ScrapeInterval: time.Duration(float64(time.Second) * ts), MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
		if err != nil {
			return QualityRow{}, err
		}
		defer func() { _ = r.Shutdown(context.Background()) }()
		deadline := time.Now().Add(10 * time.Second)
		for !routerReady(client, r.Addr()) {
			if time.Now().After(deadline) {
				return QualityRow{}, fmt.Errorf("router not ready")
			}
			time.Sleep(10 * time.Millisecond)
		}
		url := "http://" + r.Addr() + "/v1/chat/completions"
		target = func(request) (string, func()) { return url, func() {} }
		model = "bench"
	}

	results := make([]result, len(reqs))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, q := range reqs {
		if d := time.Until(t0.Add(time.Duration(q.at * ts * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			url, done := target(q)
			defer done()
			results[i] = send(ctx, client, url, q.body(model), t0)
		}()
	}
	wg.Wait()
	return summarize(w.Name, p.Name, results, ts, fleet), nil
}

func routerReady(c *http.Client, addr string) bool {
	res, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// oracle picks, among engines with at most oracleBand more requests in
// flight than the least loaded one, the one that will serve the longest
// prefix of the prompt from cache: what its cache holds now (exact, read
// from the simulator) or the shared system prompt of a request already sent
// to it and still in flight (its blocks are being computed). Ties go to the
// engine with fewest requests in flight.
const oracleBand = 8

func oracle(f *sim.Fleet) func(q request) (string, func()) {
	var mu sync.Mutex
	inflight := make([]int, len(f.Engines))
	pending := make([]map[string]int, len(f.Engines)) // system prompt -> requests in flight
	for i := range pending {
		pending[i] = map[string]int{}
	}
	tok := f.Engines[0].Tokenizer()
	return func(q request) (string, func()) {
		ids := tok.EncodeChat(q.messages(), true)
		sysTokens := 0
		if q.system != "" {
			sysTokens = len(tok.EncodeChat(q.messages()[:1], false))
		}
		best, bestCached := -1, -1
		mu.Lock()
		least := slices.Min(inflight)
		for pass := 0; pass < 2 && best < 0; pass++ {
			for i, e := range f.Engines {
				if pass == 0 && inflight[i] > least+oracleBand {
					continue
				}
				c := e.CachedPrefixTokens(ids, "")
				if q.system != "" && pending[i][q.system] > 0 {
					c = max(c, sysTokens)
				}
				if c > bestCached || (c == bestCached && inflight[best] > inflight[i]) {
					best, bestCached = i, c
				}
			}
		}
		inflight[best]++
		pending[best][q.system]++
		mu.Unlock()
		return f.URL(best) + "/v1/chat/completions", func() {
			mu.Lock()
			inflight[best]--
			if pending[best][q.system]--; pending[best][q.system] == 0 {
				delete(pending[best], q.system)
			}
			mu.Unlock()
		}
	}
}

func send(ctx context.Context, c *http.Client, url string, body []byte, t0 time.Time) result {
	res := result{start: time.Since(t0)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return res
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 6 && bytes.HasPrefix(line, []byte("data: ")) {
			data := line[6:]
			if res.ttft == 0 && bytes.Contains(data, []byte(`"content"`)) {
				res.ttft = time.Since(t0)
			}
			if bytes.Contains(data, []byte(`"usage":{`)) {
				var u struct {
					Usage struct {
						PromptTokens        int `json:"prompt_tokens"`
						CompletionTokens    int `json:"completion_tokens"`
						PromptTokensDetails struct {
							CachedTokens int `json:"cached_tokens"`
						} `json:"prompt_tokens_details"`
					} `json:"usage"`
				}
				if json.Unmarshal(data, &u) == nil {
					res.prompt, res.completed, res.cached = u.Usage.PromptTokens, u.Usage.CompletionTokens, u.Usage.PromptTokensDetails.CachedTokens
				}
			}
			if bytes.HasPrefix(data, []byte("[DONE]")) {
				res.ok = res.ttft > 0 && res.completed > 0
			}
		}
		if err != nil {
			break
		}
	}
	res.end = time.Since(t0)
	return res
}

func summarize(wl, policy string, rs []result, ts float64, f *sim.Fleet) QualityRow {
	row := QualityRow{Workload: wl, Policy: policy, Requests: len(rs)}
	var ttft, e2e []float64
	var prompt, cached, out int
	var first, last time.Duration = math.MaxInt64, 0
	for _, r := range rs {
		if !r.ok {
			continue
		}
		row.OK++
		sec := func(d time.Duration) float64 { return d.Seconds() / ts }
		ttft = append(ttft, sec(r.ttft-r.start))
		e2e = append(e2e, sec(r.end-r.start))
		prompt += r.prompt
		cached += r.cached
		out += r.completed
		first, last = min(first, r.start), max(last, r.end)
	}
	if row.OK > 0 {
		row.TTFTP50, row.TTFTP90, row.E2EP90 = quantile(ttft, .5), quantile(ttft, .9), quantile(e2e, .9)
		row.OutputTokPerSec = float64(out) / ((last - first).Seconds() / ts)
		row.HitRate = float64(cached) / float64(max(prompt, 1))
	}
	for _, e := range f.Engines {
		row.PerEngineRequests = append(row.PerEngineRequests, int(e.Stats().Totals.FinishedRequests))
	}
	return row
}

func quantile(v []float64, q float64) float64 {
	slices.Sort(v)
	return v[min(len(v)-1, int(q*float64(len(v))))]
}

// QualityMarkdown renders the rows, one table per workload.
func QualityMarkdown(rows []QualityRow, o QualityOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d simulated engines (`%s`, `internal/sim`: continuous batching, chunked prefill, paged KV cache with prefix caching, roofline-priced steps), time scale %g; times are simulated seconds. ", o.Engines, o.Profile, o.TimeScale)
	b.WriteString("Each policy runs on a fresh fleet (cold caches) and a fresh router with the same seeded open-loop Poisson arrivals; requests stream with `ignore_eos`, TTFT is the client's time to the first content chunk, the hit rate is Σ`cached_tokens`/Σ`prompt_tokens` from the engines' usage. ")
	b.WriteString("The oracle bypasses the router: it reads every engine's cache (`Engine.CachedPrefixTokens`) and the system prompts it has in flight, and picks the longest cached prefix among engines with at most 8 more requests in flight than the least loaded one (ties: fewest in flight).\n")
	wl := ""
	for _, r := range rows {
		if r.Workload != wl {
			wl = r.Workload
			fmt.Fprintf(&b, "\n### %s\n\n| policy | ok | output tok/s | TTFT p50 | TTFT p90 | E2E p90 | prefix hit rate | requests per engine |\n|---|---|---|---|---|---|---|---|\n", wl)
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.0f | %.3f s | %.3f s | %.2f s | %.1f %% | %v |\n", r.Policy, r.OK, r.Requests,
			r.OutputTokPerSec, r.TTFTP50, r.TTFTP90, r.E2EP90, 100*r.HitRate, r.PerEngineRequests)
	}
	return b.String()
}
