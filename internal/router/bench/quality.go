package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Policy is a routing policy under test: a router configuration, or the
// oracle (no router: the client reads every engine's cache).
type Policy struct {
	Name   string
	Config string // "" = oracle
}

func scoreOnly(name string) string {
	return "scheduler:\n  plugins:\n    Score:\n      enabled:\n      - " + name + "\n"
}

// inProcessKV is kvcache-aware tokenising in process with kthena-sim's
// tokenizer, instead of asking the engines' /tokenize.
const inProcessKV = "  - name: kvcache-aware\n    args: {tokenizerEncoding: cl100k_base}\n"

// KVAwareAlone is kvcache-aware as the only scorer (in-process tokenizer).
const KVAwareAlone = "scheduler:\n  pluginConfig:\n" + inProcessKV + "  plugins:\n    Score:\n      enabled:\n      - kvcache-aware\n"

// KthenaInProcessKV is Kthena's default with kvcache-aware tokenising in
// process rather than through the engines' /tokenize. kvcache-aware sits at
// prefix-cache's weight in the default: kvcache-aware knows what the
// engines hold (evictions, restarts) but only once a prefill has stored
// it, prefix-cache knows what the router just sent, so a burst of one new
// prompt sticks together before any block is stored. Measured on saturated
// long shared prompts (time scale 2, docs/kvcache-routing.md): both at
// weight 2 served 5,110 output tok/s at a 66.5 % hit rate; kvcache-aware in
// prefix-cache's place 3,775 tok/s at 49.6 % (requests of a group spread
// while its first prefill runs); each at weight 1 fell behind the arrivals.
var KthenaInProcessKV = strings.Replace(config.Default, "  - name: kvcache-aware\n", inProcessKV, 1)

// Policies are the baselines, each scorer alone (least-request with its
// queue filter), upstream's Helm blend, Kthena's default (kvcache-aware
// through the engines' /tokenize), kvcache-aware alone and Kthena's default
// tokenising in process, and the oracle.
func Policies() []Policy {
	return []Policy{
		{"random", scoreOnly("random")},
		{"round-robin", scoreOnly("round-robin")},
		{"least-request", "scheduler:\n  plugins:\n    Filter:\n      enabled: [least-request]\n    Score:\n      enabled: [least-request]\n"},
		{"gpu-usage", scoreOnly("gpu-usage")},
		{"least-latency", scoreOnly("least-latency")},
		{"prefix-cache", scoreOnly("prefix-cache")},
		{"upstream default", config.UpstreamDefault},
		{"kthena default", config.Default},
		{PolicyKVAware, KVAwareAlone},
		{PolicyKthenaKV, KthenaInProcessKV},
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
	// ScrapeInterval is the router's engine scrape interval in simulated
	// seconds (0 = 1).
	ScrapeInterval float64
	// Note is added to the report (e.g. machine load during the run).
	Note string
}

// QualityRow is one policy on one workload; times are simulated.
type QualityRow struct {
	Workload, Policy          string
	Requests, OK              int
	OutputTokPerSec           float64 // output tokens / (last completion − first send)
	TTFTP50, TTFTP90, TTFTP99 float64 // seconds
	TPOTP50, TPOTP90          float64 // seconds per output token after the first
	E2EP90                    float64
	HitRate                   float64 // cached prompt tokens / prompt tokens
	PerEngineRequests         []int
	// MaxShare is the largest max/mean of the engines' request arrivals
	// over every 10 s window (sliding by 1 s) with enough requests
	// (windowShare); 0 when no window qualifies.
	MaxShare float64
	// Preemptions are the engines' preemptions summed.
	Preemptions int64
	Wall        time.Duration // wall time of the run
	LagP99      time.Duration // p99 wake-up lateness of the bench process (startLagMonitor)
	// KVIndex is the router's KV-event index, for policies with
	// kvcache-aware.
	KVIndex *KVIndexStats `json:",omitempty"`
}

// KVIndexStats describe the router's kvcache-aware index over a run.
type KVIndexStats struct {
	// Entries are the (pod, block) entries at the end, PeakEntries the
	// most sampled (each simulated second).
	Entries, PeakEntries int
	// Counters are the index's ingest counters at the end.
	Counters map[string]int64
	// Batches is the number of event batches whose age was observed;
	// LagP50/P99/Max are their ages when applied (wall time from the
	// engine's publish timestamp to the index holding the blocks).
	Batches                int
	LagP50, LagP99, LagMax time.Duration
}

// bytesPerEntry is the index's measured cost of one (pod, block) entry when
// each block is on one pod (TestBytesPerBlock, docs/kvcache-routing.md;
// 64 bytes when four pods share a block): an upper bound per entry.
const bytesPerEntry = 102

type result struct {
	ok                        bool
	start, ttft, end          time.Duration
	prompt, cached, completed int
	text                      string // the answer, when asked for
	// gaps are the wall times between content chunks (inter-token
	// latencies when the engine streams a token per chunk).
	gaps []time.Duration
}

// RunQuality runs every policy on every workload, each on a fresh fleet
// (cold caches) and a fresh router.
func RunQuality(ctx context.Context, o QualityOptions) ([]QualityRow, error) {
	tok, err := tokenizer.New("")
	if err != nil {
		return nil, err
	}
	var rows []QualityRow
	for _, w := range o.Workloads {
		ss := w.sessions()
		// The engines share tok and its cache of long segments: fill it
		// first so that the first policy does not pay for the others.
		for _, s := range ss {
			for _, q := range s.turns {
				_, _ = tok.EncodeChat(q.messages(), true)
			}
		}
		for _, p := range o.Policies {
			start := time.Now()
			row, _, err := runPolicy(ctx, o, tok, w, p, ss)
			if err != nil {
				return nil, fmt.Errorf("%s / %s: %w", w.Name, p.Name, err)
			}
			row.Wall = time.Since(start)
			o.Log.Info("policy done", "workload", w.Name, "policy", p.Name, "ok", row.OK, "outTokPerSec", int(row.OutputTokPerSec),
				"hitRate", row.HitRate, "ttftP90", row.TTFTP90, "wall", row.Wall.Round(time.Second))
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runPolicy(ctx context.Context, o QualityOptions, tok *tokenizer.Tokenizer, w Workload, p Policy, ss []session) (QualityRow, []result, error) {
	if w.TimeScale > 0 {
		o.TimeScale *= w.TimeScale
	}
	cfgs := make([]sim.Config, o.Engines)
	ports, err := freePorts(o.Engines)
	if err != nil {
		return QualityRow{}, nil, err
	}
	for i := range cfgs {
		// Every engine publishes KV events (each on its own port), whatever
		// the policy, so that every policy meets the same engines.
		cfgs[i] = sim.Config{Profile: o.Profile, TimeScale: o.TimeScale, Seed: int64(i + 1), MaxModelLen: w.MaxModelLen,
			KVEventsEndpoint: fmt.Sprintf("tcp://*:%d", ports[i])}.WithDefaults()
	}
	fleet, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	if err != nil {
		return QualityRow{}, nil, err
	}
	defer fleet.Close()
	model := cfgs[0].Model
	ts := o.TimeScale
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}}

	var target func(q request) (url string, done func())
	var idx *kvindex.Backend
	if p.Config == "" {
		target = oracle(fleet)
	} else {
		var eps strings.Builder
		eps.WriteString("kind: Endpoints\nendpoints:\n")
		for i, a := range fleet.Addrs {
			fmt.Fprintf(&eps, "- {name: e%d, address: %q, labels: {app: sim, %s: \"%d\"}}\n", i, a, kvcacheaware.PortLabel, ports[i])
		}
		file := fmt.Sprintf(`kind: ModelServer
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: sim}
spec: {model: %s, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: sim}}, workloadPort: {port: 8000}}
---
%s`, model, eps.String())
		before := map[kvindex.Inspector]bool{}
		for _, in := range kvindex.Inspectors() {
			before[in] = true
		}
		r, stop, err := startRouter(ctx, client, file, p.Config, ts*o.scrape())
		if err != nil {
			return QualityRow{}, nil, err
		}
		defer stop()
		for _, in := range kvindex.Inspectors() {
			if b, ok := in.(*kvindex.Backend); ok && !before[in] {
				idx = b // the new router's (routers of earlier runs linger until collected)
			}
		}
		url := "http://" + r.Addr() + "/v1/chat/completions"
		target = func(request) (string, func()) { return url, func() {} }
		model = "bench"
	}

	var lags *lagRecorder
	if idx != nil {
		lags = &lagRecorder{}
		idx.Index().ObserveLag(lags.add)
	}
	stopWindows := sampleArrivals(fleet, ts, idx)
	stopRestarts := restart(ctx, o.Log, fleet, w.Restarts, ts)
	results, lagP99 := drive(ctx, client, ss, model, ts, target)
	stopRestarts()
	arrivals, peak := stopWindows()
	row := summarize(w.Name, p.Name, results, ts, fleet)
	row.LagP99 = lagP99
	row.MaxShare = windowShare(arrivals, 10)
	if idx != nil {
		idx.Index().ObserveLag(nil)
		x := idx.Index()
		st := &KVIndexStats{Entries: x.Entries(), PeakEntries: max(peak, x.Entries()), Counters: x.Counters()}
		st.Batches, st.LagP50, st.LagP99, st.LagMax = lags.quantiles()
		row.KVIndex = st
	}
	return row, results, nil
}

// freePorts returns n loopback ports free now (for the engines' KV-event
// publishers, which bind their own).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// lagRecorder collects event-batch ages from the index's writers.
type lagRecorder struct {
	mu   sync.Mutex
	ages []float64
}

func (l *lagRecorder) add(d time.Duration) {
	l.mu.Lock()
	l.ages = append(l.ages, float64(d))
	l.mu.Unlock()
}

func (l *lagRecorder) quantiles() (n int, p50, p99, most time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ages) == 0 {
		return 0, 0, 0, 0
	}
	return len(l.ages), time.Duration(quantile(l.ages, .5)), time.Duration(quantile(l.ages, .99)), time.Duration(slices.Max(l.ages))
}

// Restart is an engine restarted during a run (sim.Fleet.Restart): it
// drains, stays down, then serves again with an empty cache and a new
// KV-event stream.
type Restart struct {
	At     float64 // simulated seconds from the start
	Engine int
	Down   float64 // simulated seconds down after draining
}

// restart runs the restarts on schedule until the returned function is
// called, which waits for a restart under way.
func restart(ctx context.Context, log logr.Logger, f *sim.Fleet, rs []Restart, ts float64) func() {
	if len(rs) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(done)
		for _, r := range rs {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(t0.Add(time.Duration(r.At * ts * float64(time.Second))))):
			}
			if err := f.Restart(r.Engine, time.Duration(r.Down*ts*float64(time.Second))); err != nil {
				log.Error(err, "restarting engine", "engine", r.Engine)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (o QualityOptions) scrape() float64 {
	if o.ScrapeInterval > 0 {
		return o.ScrapeInterval
	}
	return 1
}

// sampleArrivals reads every engine's arrivals so far (finished + running +
// waiting requests, summed over an engine's restarts) and the index's
// entries (idx may be nil) each simulated second until the returned
// function is called, which returns the samples, [second][engine], and the
// most entries seen.
func sampleArrivals(f *sim.Fleet, ts float64, idx *kvindex.Backend) func() ([][]int64, int) {
	var out [][]int64
	peak := 0
	read := func() {
		row := make([]int64, len(f.Addrs))
		for i := range f.Addrs {
			for _, e := range f.Generations(i) {
				st := e.Stats()
				row[i] += st.Totals.FinishedRequests + int64(st.Running+st.Waiting)
			}
		}
		out = append(out, row)
		if idx != nil {
			peak = max(peak, idx.Index().Entries())
		}
	}
	read()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Duration(ts * float64(time.Second)))
		defer t.Stop()
		for {
			select {
			case <-stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() ([][]int64, int) {
		close(stop)
		<-done
		return out, peak
	}
}

// windowShare is the largest max/mean of per-engine arrivals over windows
// of w samples (sliding by one) that hold at least 25 requests per engine
// on average, so that a window's imbalance is not mere sampling noise (a
// uniform split of 100 requests per engine over four engines rarely shows
// more than 1.25). The last, partial interval counts as a whole one.
func windowShare(s [][]int64, w int) float64 {
	worst := 0.0
	if len(s) < 2 {
		return 0
	}
	n := len(s[0])
	for a := 0; a+1 < len(s); a++ {
		b := min(a+w, len(s)-1)
		if b-a < w && a > 0 {
			break // only full windows, or the whole run if shorter
		}
		total, most := int64(0), int64(0)
		for i := 0; i < n; i++ {
			d := s[b][i] - s[a][i]
			total += d
			most = max(most, d)
		}
		if total < int64(25*n) {
			continue
		}
		worst = max(worst, float64(most)*float64(n)/float64(total))
	}
	return worst
}

// startRouter starts a router in standalone mode on a ModelServer and its
// endpoints (file, without the route: the route "bench" to ModelServer
// "sim" is added) with configuration cfg, scraping every scrape (wall
// time), and waits until it is ready.
func startRouter(ctx context.Context, client *http.Client, file, cfg string, scrape float64) (*runner.Router, func(), error) {
	dir, err := os.MkdirTemp("", "kthena-bench-")
	if err != nil {
		return nil, nil, err
	}
	file += `---
kind: ModelRoute
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: bench}
spec: {modelName: bench, rules: [{targetModels: [{modelServerName: sim}]}]}
`
	epFile, cfgFile := filepath.Join(dir, "endpoints.yaml"), filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(epFile, []byte(file), 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, nil, err
	}
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile,
		ScrapeInterval: time.Duration(float64(time.Second) * scrape), MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	stop := func() { _ = r.Shutdown(context.Background()); os.RemoveAll(dir) }
	deadline := time.Now().Add(10 * time.Second)
	for !routerReady(client, r.Addr()) {
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("router not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, stop, nil
}

// drive sends the sessions at their simulated start times (time scale ts)
// to the URLs target picks and returns every request's result and the
// bench process's p99 wake-up lag during the run.
func drive(ctx context.Context, client *http.Client, ss []session, model string, ts float64, target func(q request) (string, func())) ([]result, time.Duration) {
	n := 0
	for _, s := range ss {
		n += len(s.turns)
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	lag := startLagMonitor()
	t0 := time.Now()
	simDur := func(sec float64) time.Duration { return time.Duration(sec * ts * float64(time.Second)) }
	for _, s := range ss {
		if d := time.Until(t0.Add(simDur(s.start))); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var history []tokenizer.Message
			for k, q := range s.turns {
				if k > 0 {
					time.Sleep(simDur(s.think[k-1]))
				}
				q.history = history
				url, done := target(q)
				res := send(ctx, client, url, q.body(model), t0, s.chained)
				done()
				results[s.first+k] = res
				if !res.ok {
					return // the conversation ends; its later rounds count as failed
				}
				if s.chained {
					history = append(history, tokenizer.Message{Role: "user", Content: q.q}, tokenizer.Message{Role: "assistant", Content: res.text})
				}
			}
		}()
	}
	wg.Wait()
	return results, lag()
}

// startLagMonitor measures how late this process wakes up from 5 ms sleeps
// until the returned function is called, which returns the p99 lateness.
// The simulated engines run on the wall clock, so when other jobs starve
// the process every latency grows with this lag: a run with a p99 lag of
// more than a few milliseconds is disturbed.
func startLagMonitor() func() time.Duration {
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var lags []float64
		for {
			select {
			case <-stop:
				p99 := 0.0
				if len(lags) > 0 {
					p99 = quantile(lags, .99)
				}
				done <- time.Duration(p99)
				return
			default:
			}
			t := time.Now()
			time.Sleep(5 * time.Millisecond)
			lags = append(lags, float64(time.Since(t)-5*time.Millisecond))
		}
	}()
	return func() time.Duration {
		close(stop)
		return <-done
	}
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
	inflight := make([]int, len(f.Addrs))
	pending := make([]map[string]int, len(f.Addrs)) // system prompt -> requests in flight
	for i := range pending {
		pending[i] = map[string]int{}
	}
	tok := f.Engine(0).Tokenizer()
	return func(q request) (string, func()) {
		ids, _ := tok.EncodeChat(q.messages(), true) // the built-in template cannot fail
		sysTokens := 0
		if q.system != "" {
			sys, _ := tok.EncodeChat(q.messages()[:1], false)
			sysTokens = len(sys)
		}
		best, bestCached := -1, -1
		mu.Lock()
		least := math.MaxInt
		for i := range inflight {
			if f.Up(i) {
				least = min(least, inflight[i])
			}
		}
		// Engines restarting are skipped (unless every one is).
		for pass := 0; pass < 3 && best < 0; pass++ {
			for i := range f.Addrs {
				if pass == 0 && (inflight[i] > least+oracleBand || !f.Up(i)) || pass == 1 && !f.Up(i) {
					continue
				}
				c := f.Engine(i).CachedPrefixTokens(ids, "")
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

// send streams one request; with wantText it collects the answer's text.
func send(ctx context.Context, c *http.Client, url string, body []byte, t0 time.Time, wantText bool) result {
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
	var text strings.Builder
	var lastChunk time.Duration
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 6 && bytes.HasPrefix(line, []byte("data: ")) {
			data := line[6:]
			if bytes.Contains(data, []byte(`"content"`)) {
				now := time.Since(t0)
				if res.ttft == 0 {
					res.ttft = now
				} else {
					res.gaps = append(res.gaps, now-lastChunk)
				}
				lastChunk = now
			}
			if wantText && bytes.Contains(data, []byte(`"content"`)) {
				var ch struct {
					Choices []struct {
						Delta struct {
							Content string `json:"content"`
						} `json:"delta"`
					} `json:"choices"`
				}
				if json.Unmarshal(data, &ch) == nil {
					for _, c := range ch.Choices {
						text.WriteString(c.Delta.Content)
					}
				}
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
	res.text = text.String()
	return res
}

func summarize(wl, policy string, rs []result, ts float64, f *sim.Fleet) QualityRow {
	row := QualityRow{Workload: wl, Policy: policy, Requests: len(rs)}
	var ttft, tpot, e2e []float64
	var prompt, cached, out int
	var first, last time.Duration = math.MaxInt64, 0
	sec := func(d time.Duration) float64 { return d.Seconds() / ts }
	for _, r := range rs {
		if !r.ok {
			continue
		}
		row.OK++
		ttft = append(ttft, sec(r.ttft-r.start))
		e2e = append(e2e, sec(r.end-r.start))
		if r.completed > 1 {
			tpot = append(tpot, sec(r.end-r.ttft)/float64(r.completed-1))
		}
		prompt += r.prompt
		cached += r.cached
		out += r.completed
		first, last = min(first, r.start), max(last, r.end)
	}
	if row.OK > 0 {
		row.TTFTP50, row.TTFTP90, row.TTFTP99 = quantile(ttft, .5), quantile(ttft, .9), quantile(ttft, .99)
		row.E2EP90 = quantile(e2e, .9)
		row.OutputTokPerSec = float64(out) / sec(last-first)
		row.HitRate = float64(cached) / float64(max(prompt, 1))
	}
	if len(tpot) > 0 {
		row.TPOTP50, row.TPOTP90 = quantile(tpot, .5), quantile(tpot, .9)
	}
	for i := range f.Addrs {
		n := 0
		for _, e := range f.Generations(i) {
			st := e.Stats()
			n += int(st.Totals.FinishedRequests)
			row.Preemptions += st.Totals.Preemptions
		}
		row.PerEngineRequests = append(row.PerEngineRequests, n)
	}
	return row
}

func quantile(v []float64, q float64) float64 {
	slices.Sort(v)
	return v[min(len(v)-1, int(q*float64(len(v))))]
}

// Policy names the target checks compare.
const (
	PolicyKthena       = "kthena default"
	PolicyUpstream     = "upstream default"
	PolicyLeastRequest = "least-request"
	PolicyOracle       = "oracle"
	PolicyKVAware      = "kvcache-aware"
	PolicyKthenaKV     = "kthena default (in-process tokenizer)"
)

// QualityMarkdown renders the rows, one table per workload, and the target
// checks.
func QualityMarkdown(rows []QualityRow, o QualityOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d simulated engines (`%s`, `internal/sim`: continuous batching, chunked prefill, paged KV cache with prefix caching, roofline-priced steps), time scale %g; times are simulated seconds; the router scrapes the engines every %g simulated s. ", o.Engines, o.Profile, o.TimeScale, o.scrape())
	b.WriteString("Each policy runs on a fresh fleet (cold caches) and a fresh router with the same seeded arrivals; requests stream with `ignore_eos`. ")
	b.WriteString("TTFT is the client's time to the first content chunk; TPOT is (E2E − TTFT)/(output tokens − 1) per request; ")
	b.WriteString("output tok/s is all output tokens over the makespan, from the first request sent to the last response finished, so a policy that falls behind the arrivals and drains a queue at the end shows a lower figure; ")
	b.WriteString("the hit rate is Σ`cached_tokens`/Σ`prompt_tokens` from the engines' usage. ")
	b.WriteString("*max/mean 10 s* is the worst 10 s window (sliding by 1 s, windows with at least 25 requests per engine) of the busiest engine's request arrivals over the mean: 1 is an even split, 4 is every request on one of four engines; *preempt.* sums the engines' preemptions. ")
	b.WriteString("The simulated engines run on the wall clock (scaled), so when other jobs starve the bench process every latency grows; *lag p99* is how late the process woke from 5 ms sleeps during the run (p99), and a run with more than a few milliseconds of lag is disturbed. ")
	fmt.Fprintf(&b, "The oracle bypasses the router: it reads every engine's cache (`Engine.CachedPrefixTokens`) and the system prompts it has in flight, and picks the longest cached prefix among engines with at most %d more requests in flight than the least loaded one (ties: fewest in flight).\n", oracleBand)
	if o.Note != "" {
		b.WriteString("\n" + o.Note + "\n")
	}
	about := map[string]Workload{}
	for _, w := range o.Workloads {
		about[w.Name] = w
	}
	wl := ""
	for i, r := range rows {
		if r.Workload != wl {
			if wl != "" {
				kvIndexTable(&b, rows, wl)
			}
			wl = r.Workload
			fmt.Fprintf(&b, "\n### %s\n\n", wl)
			if a := about[wl].About; a != "" {
				b.WriteString(a + "\n\n")
			}
			b.WriteString("| policy | ok | output tok/s | TTFT p50 | TTFT p90 | TTFT p99 | TPOT p50 | TPOT p90 | E2E p90 | prefix hit rate | requests per engine | max/mean 10 s | preempt. | lag p99 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		}
		share := "–"
		if r.MaxShare > 0 {
			share = fmt.Sprintf("%.2f", r.MaxShare)
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.0f | %.3f s | %.3f s | %.3f s | %.1f ms | %.1f ms | %.2f s | %.1f %% | %v | %s | %d | %.1f ms |\n", r.Policy, r.OK, r.Requests,
			r.OutputTokPerSec, r.TTFTP50, r.TTFTP90, r.TTFTP99, 1000*r.TPOTP50, 1000*r.TPOTP90, r.E2EP90, 100*r.HitRate, r.PerEngineRequests, share, r.Preemptions, float64(r.LagP99.Microseconds())/1000)
		if i == len(rows)-1 {
			kvIndexTable(&b, rows, wl)
		}
	}
	if t := Targets(rows, o.Workloads); len(t) > 0 {
		b.WriteString("\n### Targets\n\n")
		b.WriteString("Long shared prompts: Kthena's default must beat upstream's default in throughput and TTFT p90 and reach 90 % of the oracle's hit rate. ")
		fmt.Fprintf(&b, "kvcache-aware, alone and in Kthena's default (issue 15): a hit rate at least %.0f %% of the oracle's on every workload with shared prefixes, and on saturated long shared prompts a throughput at least %.0f %% of the oracle's and %.1f× upstream's default blend's. ", 100*kvHitOfOracle, 100*kvThroughputOfOracle, kvOverUpstream)
		b.WriteString("Short prompts: Kthena's default must be no worse than least-request, taken as throughput at least 99 % and TTFT p90 and TPOT p90 at most 105 % of least-request's (the run-to-run noise of the simulated times on this machine is a few per cent). ")
		fmt.Fprintf(&b, "Every workload: each load-aware plugin alone (%s) must match random, taken as throughput at least %.0f %% and TTFT p90 at most %.0f %% of random's, and send no engine more than %.1f× its fair share in any 10 s window (Kthena's default too, unless its prefix hits justify it).\n\n", strings.Join(loadAware, ", "), 100*aloneThroughput, 100*aloneTTFT, maxShare)
		b.WriteString("| workload | check | value | compared with | met | note |\n|---|---|---|---|---|---|\n")
		for _, c := range t {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", c.Workload, c.Check, c.Ours, c.Theirs, yesNo(c.Met), c.Note)
		}
	}
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// The plugins that balance load on their own, and what "matches random"
// allows for run-to-run noise.
var loadAware = []string{"least-request", "gpu-usage", "least-latency"}

const (
	aloneThroughput = 0.98 // of random's output tok/s, at least
	aloneTTFT       = 1.10 // of random's TTFT p90, at most
	maxShare        = 1.5  // max/mean arrivals per 10 s window, at most
)

// aloneChecks compares each load-aware plugin alone with random on one
// workload.
func aloneChecks(short, wl string, find func(wl, policy string) *QualityRow) []TargetCheck {
	r := find(wl, "random")
	var out []TargetCheck
	for _, name := range loadAware {
		p := find(wl, name)
		if p == nil {
			continue
		}
		if r != nil {
			out = append(out,
				TargetCheck{short, fmt.Sprintf("%s: throughput ≥ %.0f %% of random", name, 100*aloneThroughput), fmt.Sprintf("%.0f tok/s", p.OutputTokPerSec), fmt.Sprintf("%.0f tok/s", r.OutputTokPerSec), p.OutputTokPerSec >= aloneThroughput*r.OutputTokPerSec, ""},
				TargetCheck{short, fmt.Sprintf("%s: TTFT p90 ≤ %.0f %% of random", name, 100*aloneTTFT), fmt.Sprintf("%.3f s", p.TTFTP90), fmt.Sprintf("%.3f s", r.TTFTP90), p.TTFTP90 <= aloneTTFT*r.TTFTP90, ""})
		}
		if p.MaxShare > 0 {
			out = append(out, TargetCheck{short, fmt.Sprintf("%s: max/mean 10 s ≤ %.1f", name, maxShare), fmt.Sprintf("%.2f", p.MaxShare), "", p.MaxShare <= maxShare, ""})
		}
	}
	return out
}

// kvIndexTable writes, after a workload's table, its kvcache-aware
// policies' index: memory and event lag.
func kvIndexTable(b *strings.Builder, rows []QualityRow, wl string) {
	head := false
	for _, r := range rows {
		k := r.KVIndex
		if r.Workload != wl || k == nil {
			continue
		}
		if !head {
			fmt.Fprintf(b, "\nThe router's KV-event index (kvcache-aware): (pod, block) entries at the end and at the peak (sampled every simulated second), bytes at the peak at %d B per entry (`TestBytesPerBlock`, blocks on one pod each; an upper bound), blocks stored and removed by the engines' events, resynchronisations (a lost connection, a sequence gap or restart) and blocks whose parent the index did not hold (orphans); event lag is wall time from an engine's batch timestamp to the index holding its blocks, over every batch.\n\n", bytesPerEntry)
			b.WriteString("| policy | entries (end / peak) | ≈ memory at peak | stored / removed | resyncs | orphans | event lag p50 / p99 / max |\n|---|---|---|---|---|---|---|\n")
			head = true
		}
		c := k.Counters
		fmt.Fprintf(b, "| %s | %d / %d | %.1f MB | %d / %d | %d | %d | %s / %s / %s (%d batches) |\n", r.Policy, k.Entries, k.PeakEntries,
			float64(k.PeakEntries*bytesPerEntry)/1e6, c["stored"], c["removed"], c["resyncs"], c["orphans"], millis(k.LagP50), millis(k.LagP99), millis(k.LagMax), k.Batches)
	}
}

func millis(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// kvcache-aware's targets (issue 15).
const (
	kvHitOfOracle        = 0.97 // hit rate, of the oracle's, on shared-prefix workloads
	kvThroughputOfOracle = 0.98 // saturated long shared prompts
	kvOverUpstream       = 1.3  // saturated long shared prompts, × upstream default's throughput
)

// sharedPrefixes reports whether requests of w share prefixes.
func (w Workload) sharedPrefixes() bool {
	switch w.Kind {
	case KindMultiTurn:
		return true
	case KindShareGPT:
		return false
	}
	return w.SystemTokens > 0 && w.PerGroup > 1
}

// kvChecks are kvcache-aware's targets on one workload.
func kvChecks(short string, w Workload, find func(wl, policy string) *QualityRow) []TargetCheck {
	or := find(w.Name, PolicyOracle)
	up := find(w.Name, PolicyUpstream)
	var out []TargetCheck
	for _, name := range []string{PolicyKVAware, PolicyKthena, PolicyKthenaKV} {
		p := find(w.Name, name)
		if p == nil || or == nil {
			continue
		}
		if w.sharedPrefixes() {
			out = append(out, TargetCheck{short, fmt.Sprintf("%s: hit rate ≥ %.0f %% of oracle", name, 100*kvHitOfOracle), fmt.Sprintf("%.1f %%", 100*p.HitRate),
				fmt.Sprintf("%.1f %% (%.0f %% of it)", 100*or.HitRate, 100*p.HitRate/max(or.HitRate, 1e-9)), p.HitRate >= kvHitOfOracle*or.HitRate, ""})
		}
		if w.Saturated {
			out = append(out, TargetCheck{short, fmt.Sprintf("%s: throughput ≥ %.0f %% of oracle", name, 100*kvThroughputOfOracle), fmt.Sprintf("%.0f tok/s", p.OutputTokPerSec),
				fmt.Sprintf("%.0f tok/s (%.0f %% of it)", or.OutputTokPerSec, 100*p.OutputTokPerSec/max(or.OutputTokPerSec, 1e-9)), p.OutputTokPerSec >= kvThroughputOfOracle*or.OutputTokPerSec, ""})
			if up != nil {
				out = append(out, TargetCheck{short, fmt.Sprintf("%s: throughput ≥ %.1f× upstream", name, kvOverUpstream), fmt.Sprintf("%.0f tok/s", p.OutputTokPerSec),
					fmt.Sprintf("%.0f tok/s (%.2f×)", up.OutputTokPerSec, p.OutputTokPerSec/max(up.OutputTokPerSec, 1e-9)), p.OutputTokPerSec >= kvOverUpstream*up.OutputTokPerSec, ""})
			}
		}
	}
	return out
}

// TargetCheck is one acceptance check on one workload.
type TargetCheck struct {
	Workload, Check, Ours, Theirs string
	Met                           bool
	Note                          string
}

// Targets evaluates the acceptance checks of the workloads that name one,
// when the rows hold the policies they compare.
func Targets(rows []QualityRow, ws []Workload) []TargetCheck {
	find := func(wl, policy string) *QualityRow {
		for i := range rows {
			if rows[i].Workload == wl && rows[i].Policy == policy {
				return &rows[i]
			}
		}
		return nil
	}
	var out []TargetCheck
	for _, w := range ws {
		short, _, _ := strings.Cut(w.Name, " (")
		out = append(out, aloneChecks(short, w.Name, find)...)
		out = append(out, kvChecks(short, w, find)...)
		k := find(w.Name, PolicyKthena)
		if k == nil {
			continue
		}
		if k.MaxShare > 0 {
			c := TargetCheck{short, fmt.Sprintf("kthena default: max/mean 10 s ≤ %.1f", maxShare), fmt.Sprintf("%.2f", k.MaxShare), "", k.MaxShare <= maxShare, ""}
			if !c.Met && k.HitRate > 0.3 {
				c.Note = fmt.Sprintf("prefix hit rate %.0f %%", 100*k.HitRate)
			}
			out = append(out, c)
		}
		switch w.Target {
		case TargetLong:
			if u := find(w.Name, PolicyUpstream); u != nil {
				tp := TargetCheck{short, "throughput > upstream", fmt.Sprintf("%.0f tok/s", k.OutputTokPerSec), fmt.Sprintf("%.0f tok/s", u.OutputTokPerSec), k.OutputTokPerSec > u.OutputTokPerSec, ""}
				if d := k.OutputTokPerSec/max(u.OutputTokPerSec, 1e-9) - 1; math.Abs(d) < 0.01 {
					tp.Note = fmt.Sprintf("%+.1f %%: below saturation the open-loop arrivals set the throughput", 100*d)
				}
				out = append(out, tp,
					TargetCheck{short, "TTFT p90 < upstream", fmt.Sprintf("%.3f s", k.TTFTP90), fmt.Sprintf("%.3f s", u.TTFTP90), k.TTFTP90 < u.TTFTP90, ""})
			}
			if or := find(w.Name, PolicyOracle); or != nil {
				out = append(out, TargetCheck{short, "hit rate ≥ 90 % of oracle", fmt.Sprintf("%.1f %%", 100*k.HitRate), fmt.Sprintf("%.1f %% (ours is %.0f %% of it)", 100*or.HitRate, 100*k.HitRate/max(or.HitRate, 1e-9)), k.HitRate >= 0.9*or.HitRate, ""})
			}
		case TargetShort:
			if l := find(w.Name, PolicyLeastRequest); l != nil {
				out = append(out,
					TargetCheck{short, "throughput ≥ 99 % of least-request", fmt.Sprintf("%.0f tok/s", k.OutputTokPerSec), fmt.Sprintf("%.0f tok/s", l.OutputTokPerSec), k.OutputTokPerSec >= 0.99*l.OutputTokPerSec, ""},
					TargetCheck{short, "TTFT p90 ≤ 105 % of least-request", fmt.Sprintf("%.3f s", k.TTFTP90), fmt.Sprintf("%.3f s", l.TTFTP90), k.TTFTP90 <= 1.05*l.TTFTP90, ""},
					TargetCheck{short, "TPOT p90 ≤ 105 % of least-request", fmt.Sprintf("%.1f ms", 1000*k.TPOTP90), fmt.Sprintf("%.1f ms", 1000*l.TPOTP90), k.TPOTP90 <= 1.05*l.TPOTP90, ""})
			}
		}
	}
	return out
}
