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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/testing/simroute"
	"github.com/kthena/kthena/internal/tokenizer"
)

// FairnessOptions configure the fairness bench.
type FairnessOptions struct {
	// Engines simulated engines with MaxNumSeqs slots each (continuous
	// batching; beyond the slots requests wait in the engine).
	Engines, MaxNumSeqs int
	// PerPod is Kthena's maxInFlightPerPod in the fixed-capacity policy
	// (0: MaxNumSeqs).
	PerPod int
	// Duration of each scenario run; Warmup is left out of the fairness
	// windows; Window is the width of a fairness window.
	Duration, Warmup, Window time.Duration
	// Solo is the duration of the well-behaved tenant's solo run.
	Solo time.Duration
	// LimitDuration is the time of each rate-limit measurement.
	LimitDuration time.Duration
	// OverheadRequests per path of the empty-queue latency measurement.
	OverheadRequests int
	// Only runs the parts whose name contains it (a, b, c, overhead,
	// limits); empty runs everything.
	Only string
	// Progress receives a line per finished step.
	Progress func(format string, args ...any)
	Note     string
}

// Request shape of the saturated fleet: about 200 prompt tokens, 48
// output tokens (jittered ±30 %), fixed engine step times so that the
// fleet's capacity is known: a prefill step of 40 ms, a decode step of
// 20 ms.
const (
	fairPromptWords = 150
	fairOutput      = 48
	fairTTFT        = 40 * time.Millisecond
	fairITL         = 20 * time.Millisecond
	// TenantHeader names the tenant (the router trusts it: auth.tenantHeader).
	fairTenantHeader   = "X-Tenant-Id"
	fairPriorityHeader = "X-Kthena-Priority"
)

// Fairness policies.
const (
	PolicyFCFS           = "FCFS (no queue)"
	PolicyUpstreamFair   = "upstream formula"
	PolicyKthenaFixed    = "Kthena (maxInFlightPerPod)"
	PolicyKthenaSignal   = "Kthena (engine signal)"
	fairPolicyFCFS       = 0
	fairPolicyUpstream   = 1
	fairPolicyKthenaFix  = 2
	fairPolicyKthenaSig  = 3
	scenarioSkew         = "a"
	scenarioBurst        = "b"
	scenarioPriority     = "c"
	fairBurstCapacityMul = 10
)

// FairPolicies lists the compared policies in report order.
var FairPolicies = []string{PolicyFCFS, PolicyUpstreamFair, PolicyKthenaFixed, PolicyKthenaSignal}

// TenantStats are one tenant's figures in one run.
type TenantStats struct {
	Tenant               string
	Priority             int
	Sent, OK, R429, R504 int
	Cut                  int // still waiting or running when the run ended
	Other                int // other failures, by status in OtherCodes
	OtherCodes           map[int]int
	OutTokPerSec         float64 // output tokens per second served after the warmup
	WeightedTokPerSec    float64 // input + 2·output tokens per second after the warmup
	TTFTP50, TTFTP90     float64 // seconds, completed requests and cut ones (lower bound)
	BurstTTFTP50         float64 // seconds, requests sent while the burst lasts (scenario b)
	BurstTTFTP90         float64
	BurstN               int
	WaitMean, WaitP90    float64 // seconds in the policy's queue (upstream: the gate)
	haveWait             bool
	series               []float64 // weighted tokens per second per plot bin
}

// FairRun is one policy on one scenario.
type FairRun struct {
	Scenario, Policy string
	Tenants          []TenantStats
	// JainMean and JainMin over the windows after the warmup; Windows
	// their values.
	JainMean, JainMin float64
	Windows           []float64
	// OutTokPerSec and WeightedTokPerSec of all tenants after the warmup.
	OutTokPerSec, WeightedTokPerSec float64
	// WaitMean and WaitP90 are the router queue's waits of admitted
	// requests (Kthena) or the gate's (upstream), seconds.
	WaitMean, WaitP90 float64
	HaveWait          bool
	LagP99            time.Duration
	BinSeconds        float64
}

// FairnessResult is everything the bench measured.
type FairnessResult struct {
	Options      FairnessOptions
	CapacityReqs float64 // nominal fleet capacity, requests per second
	Runs         []FairRun
	Solo         *TenantStats
	Overhead     *QueueOverhead
	Limits       []LimitRow
}

// fairCapacity is the fleet's nominal capacity in requests per second:
// every slot busy with requests of the mean output length.
func fairCapacity(o FairnessOptions) float64 {
	per := fairTTFT + time.Duration(fairOutput-1)*fairITL
	return float64(o.Engines*o.MaxNumSeqs) / per.Seconds()
}

// tenantLoad is how one tenant sends.
type tenantLoad struct {
	name     string
	priority int
	// clients > 0: closed loop, each sends its next request when the
	// previous one ended; else open loop at rate requests per second
	// (Poisson) between from and to (to 0: the end of the run).
	clients  int
	rate     float64
	from, to time.Duration
}

type fairScenario struct {
	name, title, about string
	loads              []tenantLoad
	// burst is the window of the burst (scenario b).
	burstFrom, burstTo time.Duration
	wellBehaved        string
}

func fairScenarios(o FairnessOptions) []fairScenario {
	slots := o.Engines * o.MaxNumSeqs
	capacity := fairCapacity(o)
	d := o.Duration
	// Skew: closed-loop clients 1:1:4:10; the smallest tenant keeps
	// half again its fair share of slots busy, so every tenant is
	// backlogged and a fair policy can give each a quarter.
	k := int(math.Ceil(1.5 * float64(slots) / 4))
	burstFrom, burstTo := d/3, d/3+max(d/5, 2*time.Second)
	return []fairScenario{
		{name: scenarioSkew, title: "(a) 4 tenants, equal weights, demand 1:1:4:10",
			about: fmt.Sprintf("Closed-loop clients per tenant %d:%d:%d:%d (each sends its next request when the previous one ends) on %d engine slots: every tenant is backlogged, so a fair policy serves each a quarter.", k, k, 4*k, 10*k, slots),
			loads: []tenantLoad{{name: "t1", clients: k}, {name: "t2", clients: k}, {name: "t3", clients: 4 * k}, {name: "t4", clients: 10 * k}}},
		{name: scenarioBurst, title: "(b) a steady tenant and a tenant bursting to 10× capacity",
			about: fmt.Sprintf("Tenant `steady` sends %.1f req/s (a quarter of the fleet's nominal %.1f req/s, Poisson) for the whole run; tenant `burst` sends %.0f req/s (10× capacity, Poisson) from %s to %s.",
				capacity/4, capacity, fairBurstCapacityMul*capacity, burstFrom, burstTo),
			loads:     []tenantLoad{{name: "steady", rate: capacity / 4}, {name: "burst", rate: fairBurstCapacityMul * capacity, from: burstFrom, to: burstTo}},
			burstFrom: burstFrom, burstTo: burstTo, wellBehaved: "steady"},
		{name: scenarioPriority, title: "(c) two priority classes",
			about: fmt.Sprintf("Tenant `high` sends with `%s: 1` at %.1f req/s (half the nominal capacity, Poisson); tenant `low` (priority 0) keeps %d closed-loop clients busy (twice the slots).", fairPriorityHeader, capacity/2, 2*slots),
			loads: []tenantLoad{{name: "high", priority: 1, rate: capacity / 2}, {name: "low", clients: 2 * slots}}},
	}
}

// fairRouterConfig is the router configuration of a policy: Kthena's
// default scheduling, the tenant from a trusted header, and the fair
// queue for Kthena's policies.
func fairRouterConfig(policy, perPod int) string {
	cfg := config.Default + "auth:\n  tenantHeader: " + fairTenantHeader + "\n"
	switch policy {
	case fairPolicyKthenaFix:
		cfg += fmt.Sprintf("fairness:\n  enabled: true\n  maxInFlightPerPod: %d\n", perPod)
	case fairPolicyKthenaSig:
		cfg += "fairness:\n  enabled: true\n"
	}
	return cfg
}

// fairFleet starts the engines of the saturated fleet.
func fairFleet(ctx context.Context, o FairnessOptions, tok *tokenizer.Tokenizer) (*sim.Fleet, []sim.Config, error) {
	cfgs := make([]sim.Config, o.Engines)
	for i := range cfgs {
		cfgs[i] = sim.Config{Seed: int64(i + 1), MaxNumSeqs: o.MaxNumSeqs, TimeToFirstToken: fairTTFT, InterTokenLatency: fairITL}.WithDefaults()
	}
	f, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	return f, cfgs, err
}

// startBenchRouter starts a router on a ModelServer "sim" over the fleet's
// engines, the route "bench" (routeSpec extra fields, e.g. a rateLimit)
// and configuration cfg, and waits until it is ready.
func startBenchRouter(ctx context.Context, client *http.Client, f *sim.Fleet, model, routeExtra, cfg string) (*runner.Router, func(), error) {
	dir, err := os.MkdirTemp("", "kthena-fairbench-")
	if err != nil {
		return nil, nil, err
	}
	epFile, cfgFile, err := simroute.Fleet{Model: model, Route: "bench", RouteExtra: routeExtra, Addrs: f.Addrs}.Write(dir, cfg)
	if err != nil {
		return nil, nil, err
	}
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile,
		ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
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

// fairResult is one request of the fairness bench.
type fairResult struct {
	tenant           string
	status           int // 0: the client gave up or the connection failed
	start, ttft, end time.Duration
	input, output    int
	wait             time.Duration
	gated            bool
}

func fairBody(r *rand.Rand, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{"model": "bench", "max_tokens": jitter(r, fairOutput), "ignore_eos": true,
		"messages": []map[string]string{{"role": "user", "content": words(r, fairPromptWords)}},
		"stream":   stream, "stream_options": map[string]bool{"include_usage": true}})
	return b
}

// sendFair streams one request and reads its status, first token and
// usage.
func sendFair(ctx context.Context, c *http.Client, url string, body []byte, hdr http.Header, t0 time.Time) fairResult {
	res := fairResult{start: time.Since(t0)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header = hdr.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		res.end = time.Since(t0)
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		res.status, res.end = resp.StatusCode, time.Since(t0)
		return res
	}
	br := bufio.NewReaderSize(resp.Body, 16<<10)
	done := false
	for {
		line, err := br.ReadSlice('\n')
		if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			if res.ttft == 0 && bytes.Contains(data, []byte(`"content"`)) {
				res.ttft = time.Since(t0)
			}
			if bytes.Contains(data, []byte(`"usage":{`)) {
				var u struct {
					Usage struct {
						PromptTokens     int `json:"prompt_tokens"`
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				if json.Unmarshal(data, &u) == nil {
					res.input, res.output = u.Usage.PromptTokens, u.Usage.CompletionTokens
				}
			}
			if bytes.HasPrefix(data, []byte("[DONE]")) {
				done = true
			}
		}
		if err != nil {
			break
		}
	}
	res.end = time.Since(t0)
	if done && res.ttft > 0 && res.output > 0 {
		res.status = http.StatusOK
	}
	return res
}

// runFairScenario runs one scenario under one policy on a fresh fleet and
// router and returns every request.
func runFairScenario(ctx context.Context, o FairnessOptions, tok *tokenizer.Tokenizer, sc fairScenario, policy int, d time.Duration) ([]fairResult, *runner.Router, time.Duration, error) {
	fleet, cfgs, err := fairFleet(ctx, o, tok)
	if err != nil {
		return nil, nil, 0, err
	}
	defer fleet.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8192, MaxIdleConns: 8192}}
	defer client.CloseIdleConnections()
	perPod := o.PerPod
	if perPod == 0 {
		perPod = o.MaxNumSeqs
	}
	r, stop, err := startBenchRouter(ctx, client, fleet, cfgs[0].Model, "", fairRouterConfig(policy, perPod))
	if err != nil {
		return nil, nil, 0, err
	}
	defer stop()
	var gate *upstreamGate
	if policy == fairPolicyUpstream {
		gate = newUpstreamGate(defaultUpstreamSettings(o.Engines*o.MaxNumSeqs), nil)
	}
	url := "http://" + r.Addr() + "/v1/chat/completions"

	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var results []fairResult
	var wg sync.WaitGroup
	t0 := time.Now()
	lag := startLagMonitor()
	one := func(l tenantLoad, body []byte) fairResult {
		hdr := http.Header{}
		hdr.Set(fairTenantHeader, l.name)
		if l.priority != 0 {
			hdr.Set(fairPriorityHeader, strconv.Itoa(l.priority))
		}
		var res fairResult
		if gate != nil {
			start := time.Since(t0)
			w, err := gate.Acquire(runCtx, l.name)
			if err != nil {
				res = fairResult{start: start, end: time.Since(t0), wait: w, gated: true}
				if err == errUpstreamTimeout {
					res.status = http.StatusGatewayTimeout
				}
				res.tenant = l.name
				return res
			}
			res = sendFair(runCtx, client, url, body, hdr, t0)
			res.start, res.wait, res.gated = start, w, true
			gate.Release(l.name, res.input, res.output)
		} else {
			res = sendFair(runCtx, client, url, body, hdr, t0)
		}
		res.tenant = l.name
		return res
	}
	record := func(res fairResult) {
		mu.Lock()
		results = append(results, res)
		mu.Unlock()
	}
	for li, l := range sc.loads {
		rng := rand.New(rand.NewPCG(uint64(li+1), 7))
		if l.clients > 0 {
			for c := 0; c < l.clients; c++ {
				crng := rand.New(rand.NewPCG(uint64(li+1), uint64(c+100)))
				wg.Add(1)
				go func() {
					defer wg.Done()
					for runCtx.Err() == nil {
						res := one(l, fairBody(crng, true))
						record(res)
						if res.status != http.StatusOK && runCtx.Err() == nil {
							time.Sleep(100 * time.Millisecond) // refused: back off
						}
					}
				}()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := l.to
			if to == 0 {
				to = d
			}
			at := l.from
			for {
				at += time.Duration(rng.ExpFloat64() / l.rate * float64(time.Second))
				if at >= to {
					return
				}
				if w := time.Until(t0.Add(at)); w > 0 {
					select {
					case <-time.After(w):
					case <-runCtx.Done():
						return
					}
				}
				body := fairBody(rng, true)
				wg.Add(1)
				go func() {
					defer wg.Done()
					record(one(l, body))
				}()
			}
		}()
	}
	wg.Wait()
	return results, r, lag(), nil
}

// summarizeFair computes the run's figures.
func summarizeFair(o FairnessOptions, sc fairScenario, policy string, rs []fairResult, d time.Duration) FairRun {
	run := FairRun{Scenario: sc.name, Policy: policy, BinSeconds: 2}
	var ev []served
	var names []string
	idx := map[string]int{}
	for _, l := range sc.loads {
		idx[l.name] = len(run.Tenants)
		names = append(names, l.name)
		run.Tenants = append(run.Tenants, TenantStats{Tenant: l.name, Priority: l.priority,
			series: make([]float64, int(math.Ceil(d.Seconds()/run.BinSeconds)))})
	}
	span := (d - o.Warmup).Seconds()
	ttft := make([][]float64, len(names))
	burstTTFT := make([][]float64, len(names))
	waits := make([][]float64, len(names))
	var allWaits []float64
	for _, r := range rs {
		i := idx[r.tenant]
		t := &run.Tenants[i]
		t.Sent++
		switch {
		case r.status == http.StatusOK && r.end <= d:
			t.OK++
			tok := float64(r.input + 2*r.output)
			ev = append(ev, served{tenant: r.tenant, at: r.end, tokens: tok})
			if r.end >= o.Warmup {
				t.OutTokPerSec += float64(r.output) / span
				t.WeightedTokPerSec += tok / span
			}
			if b := int(r.end.Seconds() / run.BinSeconds); b < len(t.series) {
				t.series[b] += tok / run.BinSeconds
			}
			ttft[i] = append(ttft[i], (r.ttft - r.start).Seconds())
			if sc.burstTo > 0 && r.start >= sc.burstFrom && r.start < sc.burstTo {
				burstTTFT[i] = append(burstTTFT[i], (r.ttft - r.start).Seconds())
			}
			if r.gated {
				waits[i] = append(waits[i], r.wait.Seconds())
				allWaits = append(allWaits, r.wait.Seconds())
			}
		case r.status == http.StatusTooManyRequests:
			t.R429++
		case r.status == http.StatusGatewayTimeout:
			t.R504++
		case r.status == 0 || r.status == http.StatusOK:
			// Cut at the end of the run: its TTFT is at least the time
			// it waited, counted so that requests a policy starves
			// weigh in the percentiles.
			t.Cut++
			lb := (r.end - r.start).Seconds()
			if r.ttft > 0 {
				lb = (r.ttft - r.start).Seconds()
			}
			ttft[i] = append(ttft[i], lb)
			if sc.burstTo > 0 && r.start >= sc.burstFrom && r.start < sc.burstTo {
				burstTTFT[i] = append(burstTTFT[i], lb)
			}
		default:
			t.Other++
			if t.OtherCodes == nil {
				t.OtherCodes = map[int]int{}
			}
			t.OtherCodes[r.status]++
		}
	}
	for i := range run.Tenants {
		t := &run.Tenants[i]
		if len(ttft[i]) > 0 {
			t.TTFTP50, t.TTFTP90 = quantile(ttft[i], .5), quantile(ttft[i], .9)
		}
		if n := len(burstTTFT[i]); n > 0 {
			t.BurstTTFTP50, t.BurstTTFTP90, t.BurstN = quantile(burstTTFT[i], .5), quantile(burstTTFT[i], .9), n
		}
		if len(waits[i]) > 0 {
			t.WaitMean, t.WaitP90, t.haveWait = mean(waits[i]), quantile(waits[i], .9), true
		}
		run.OutTokPerSec += t.OutTokPerSec
		run.WeightedTokPerSec += t.WeightedTokPerSec
	}
	if len(allWaits) > 0 {
		run.WaitMean, run.WaitP90, run.HaveWait = mean(allWaits), quantile(allWaits, .9), true
	}
	run.Windows, run.JainMean, run.JainMin = windowJain(windowSums(ev, names, nil, o.Warmup, d, o.Window))
	return run
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// routerQueueWait reads the router's fair-queue wait histogram: mean and
// p90 (interpolated in the buckets) of the admitted requests that waited
// or not.
func routerQueueWait(r *runner.Router) (meanSec, p90 float64, ok bool) {
	mfs, err := r.Registry.Gather()
	if err != nil {
		return 0, 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() != "kthena_router_fairness_wait_seconds" {
			continue
		}
		var h *dto.Histogram
		for _, m := range mf.GetMetric() {
			h = m.GetHistogram()
		}
		if h == nil || h.GetSampleCount() == 0 {
			return 0, 0, false
		}
		return h.GetSampleSum() / float64(h.GetSampleCount()), histQuantile(h, .9), true
	}
	return 0, 0, false
}

// histQuantile interpolates a quantile linearly within its bucket.
func histQuantile(h *dto.Histogram, q float64) float64 {
	target := q * float64(h.GetSampleCount())
	prevUpper, prevCount := 0.0, 0.0
	for _, b := range h.GetBucket() {
		c := float64(b.GetCumulativeCount())
		if c >= target {
			if math.IsInf(b.GetUpperBound(), 1) {
				return prevUpper
			}
			if c == prevCount {
				return b.GetUpperBound()
			}
			return prevUpper + (b.GetUpperBound()-prevUpper)*(target-prevCount)/(c-prevCount)
		}
		prevUpper, prevCount = b.GetUpperBound(), c
	}
	return prevUpper
}

// RunFairness runs the scenarios, the solo baseline, the empty-queue
// overhead and the rate-limit checks.
func RunFairness(ctx context.Context, o FairnessOptions) (*FairnessResult, error) {
	progress := o.Progress
	if progress == nil {
		progress = func(string, ...any) {}
	}
	tok, err := tokenizer.New("")
	if err != nil {
		return nil, err
	}
	res := &FairnessResult{Options: o, CapacityReqs: fairCapacity(o)}
	want := func(part string) bool { return o.Only == "" || strings.Contains(","+o.Only+",", ","+part+",") }
	scs := fairScenarios(o)
	if want(scenarioBurst) {
		// The well-behaved tenant alone: its TTFT baseline.
		solo := scs[1]
		solo.loads = solo.loads[:1]
		began := time.Now()
		rs, _, _, err := runFairScenario(ctx, o, tok, solo, fairPolicyFCFS, o.Solo)
		if err != nil {
			return nil, fmt.Errorf("solo run: %w", err)
		}
		so := o
		so.Warmup = 0
		run := summarizeFair(so, solo, "solo", rs, o.Solo)
		res.Solo = &run.Tenants[0]
		progress("solo steady tenant: %d ok, TTFT p50 %.3f s p90 %.3f s (%s)", res.Solo.OK, res.Solo.TTFTP50, res.Solo.TTFTP90, time.Since(began).Round(time.Second))
	}
	for _, sc := range scs {
		if !want(sc.name) {
			continue
		}
		for p, name := range FairPolicies {
			began := time.Now()
			rs, r, lag, err := runFairScenario(ctx, o, tok, sc, p, o.Duration)
			if err != nil {
				return nil, fmt.Errorf("scenario %s, %s: %w", sc.name, name, err)
			}
			run := summarizeFair(o, sc, name, rs, o.Duration)
			run.LagP99 = lag
			if p == fairPolicyKthenaFix || p == fairPolicyKthenaSig {
				run.WaitMean, run.WaitP90, run.HaveWait = routerQueueWait(r)
			}
			res.Runs = append(res.Runs, run)
			var parts []string
			for _, t := range run.Tenants {
				parts = append(parts, fmt.Sprintf("%s %.0f tok/s ok %d 429 %d 504 %d", t.Tenant, t.WeightedTokPerSec, t.OK, t.R429, t.R504))
			}
			progress("scenario %s %-28s Jain %.3f (min %.3f) weighted %.0f tok/s; %s; lag p99 %s (%s)", sc.name, name, run.JainMean, run.JainMin,
				run.WeightedTokPerSec, strings.Join(parts, ", "), lag.Round(time.Millisecond), time.Since(began).Round(time.Second))
		}
	}
	if want("overhead") {
		began := time.Now()
		ov, err := measureQueueOverhead(ctx, o, tok)
		if err != nil {
			return nil, fmt.Errorf("empty-queue overhead: %w", err)
		}
		res.Overhead = ov
		progress("empty queue: p50 fairness on %s, off %s, direct %s; Admit+Release %s (%s)", ov.On.P50, ov.Off.P50, ov.Direct.P50, ov.AdmitRelease, time.Since(began).Round(time.Second))
	}
	if want("limits") {
		rows, err := measureLimits(ctx, o, tok, progress)
		if err != nil {
			return nil, fmt.Errorf("rate limits: %w", err)
		}
		res.Limits = rows
	}
	return res, nil
}
