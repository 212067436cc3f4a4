package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

// PDSetup is one way to serve a workload on the same engines: aggregated
// (Prefill 0) or disaggregated with Prefill prefill engines and the rest
// decoding, all in one pairing group, routed with Config.
type PDSetup struct {
	Name    string
	Prefill int
	Config  string
}

// Setups names.
const (
	SetupAggregated = "aggregated"
)

// PDSetups are aggregated serving with Kthena's default scheduling, and
// 1:3, 2:2 and 3:1 prefill:decode splits, each always disaggregating and
// with the decider (Kthena's default configuration).
func PDSetups() []PDSetup {
	always := strings.Replace(config.Default, config.DefaultPDDecider, "", 1)
	ss := []PDSetup{{SetupAggregated, 0, config.Default}}
	for p := 1; p <= 3; p++ {
		ss = append(ss, PDSetup{fmt.Sprintf("PD %d:%d", p, 4-p), p, always})
	}
	for p := 1; p <= 3; p++ {
		ss = append(ss, PDSetup{fmt.Sprintf("PD %d:%d + decider", p, 4-p), p, config.Default})
	}
	return ss
}

// PDWorkloads are the disaggregation bench's workloads.
func PDWorkloads() []Workload {
	return []Workload{
		{Name: "long input (5000 in, 250 out, 8 req/s)", Groups: 240, PerGroup: 1, QuestionTokens: 5000, OutputTokens: 250, Rate: 8, Seed: 11,
			About: "llm-d's P/D guide shape (5,000 input, 250 output tokens), unshared, open-loop Poisson."},
		{Name: "chat with shared prefixes (60 users × 4 rounds, sys 1000, history 2000, q 100, answer 150)", Kind: KindMultiTurn,
			Groups: 60, PerGroup: 4, SystemTokens: 1000, HistoryTokens: 2000, QuestionTokens: 100, OutputTokens: 150, Rate: 2, ThinkTime: 2, Seed: 12,
			About: "Multi-turn chat: one system prompt for everyone, a 2,000-token history per user, each round resends the conversation: after the first round most of each prompt is cached where the previous round was decoded."},
		{Name: "short prompts (in 300, out 150, 12 req/s)", Groups: 600, PerGroup: 1, QuestionTokens: 300, OutputTokens: 150, Rate: 12, Seed: 13,
			About: "Short unshared prompts: the KV transfer costs about as much as computing the prompt."},
	}
}

// PDOptions configure the run.
type PDOptions struct {
	Engines   int
	Profile   string
	TimeScale float64
	Workloads []Workload
	Setups    []PDSetup
	Connector string
	Log       logr.Logger
	Note      string
}

// PDRow is one setup on one workload; times are simulated.
type PDRow struct {
	Workload, Setup  string
	Requests, OK     int
	OutputTokPerSec  float64
	TTFTP50, TTFTP90 float64
	ITLP50, ITLP90   float64 // gaps between streamed tokens
	ITLP99, ITLMean  float64
	TPOTP50, TPOTP90 float64 // per request: (E2E − TTFT)/(output − 1)
	E2EP50, E2EP95   float64
	// TransferMean is the mean modelled KV transfer per disaggregated
	// request (seconds); DecodeOnly the share the decider sent straight to
	// decode.
	TransferMean float64
	DecodeOnly   float64
	LagP99       time.Duration
	Wall         time.Duration
}

// RunPD runs every setup on every workload on a fresh fleet and router.
func RunPD(ctx context.Context, o PDOptions) ([]PDRow, error) {
	tok, err := tokenizer.New("")
	if err != nil {
		return nil, err
	}
	var rows []PDRow
	for _, w := range o.Workloads {
		ss := w.sessions()
		for _, s := range o.Setups {
			began := time.Now()
			row, err := runPDSetup(ctx, o, tok, w, s, ss)
			if err != nil {
				return nil, fmt.Errorf("%s / %s: %w", w.Name, s.Name, err)
			}
			row.Wall = time.Since(began)
			o.Log.Info("setup done", "workload", w.Name, "setup", s.Name, "ok", row.OK, "ttftP90", row.TTFTP90, "itlP90", row.ITLP90,
				"e2eP95", row.E2EP95, "decodeOnly", row.DecodeOnly, "wall", row.Wall.Round(time.Second))
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runPDSetup(ctx context.Context, o PDOptions, tok *tokenizer.Tokenizer, w Workload, s PDSetup, ss []session) (PDRow, error) {
	cfgs := make([]sim.Config, o.Engines)
	for i := range cfgs {
		role := sim.RoleBoth
		if s.Prefill > 0 {
			role = sim.RoleDecode
			if i < s.Prefill {
				role = sim.RolePrefill
			}
		}
		cfgs[i] = sim.Config{Profile: o.Profile, TimeScale: o.TimeScale, Seed: int64(i + 1), KVRole: role}.WithDefaults()
	}
	fleet, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	if err != nil {
		return PDRow{}, err
	}
	defer fleet.Close()
	var eps strings.Builder
	eps.WriteString("kind: Endpoints\nendpoints:\n")
	for i, a := range fleet.Addrs {
		fmt.Fprintf(&eps, "- {name: e%d, address: %q, labels: {app: sim, role: %s, group: g0}}\n", i, a, cfgs[i].KVRole)
	}
	pd := ""
	if s.Prefill > 0 {
		pd = fmt.Sprintf(", pdGroup: {groupKey: group, prefillLabels: {role: prefill}, decodeLabels: {role: decode}}}, kvConnector: {type: %s", o.Connector)
	}
	file := fmt.Sprintf(`kind: ModelServer
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: sim}
spec: {model: %s, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: sim}%s}, workloadPort: {port: 8000}}
---
%s`, cfgs[0].Model, pd, eps.String())
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxIdleConns: 4096}}
	r, stop, err := startRouter(ctx, client, file, s.Config, o.TimeScale)
	if err != nil {
		return PDRow{}, err
	}
	defer stop()
	url := "http://" + r.Addr() + "/v1/chat/completions"
	results, lag := drive(ctx, client, ss, "bench", o.TimeScale, func(request) (string, func()) { return url, func() {} })

	row := summarizePD(w.Name, s.Name, results, o.TimeScale)
	row.LagP99 = lag
	if s.Prefill > 0 {
		disagg := testutil.ToFloat64(r.Metrics.PDRequests.WithLabelValues("bench", "disaggregated"))
		only := testutil.ToFloat64(r.Metrics.PDRequests.WithLabelValues("bench", "decode_only"))
		row.DecodeOnly = only / max(disagg+only, 1)
		row.TransferMean = transferMean(fleet, results)
	}
	return row, nil
}

// transferMean is the modelled KV transfer time of the mean prompt of
// the requests that were not served from the decode engine's cache.
func transferMean(f *sim.Fleet, rs []result) float64 {
	var tokens, n int
	for _, r := range rs {
		if r.ok {
			tokens += r.prompt - r.cached
			n++
		}
	}
	if n == 0 {
		return 0
	}
	p := f.Engines[0].Profile()
	return p.KVTransferTime(tokens / n).Seconds()
}

func summarizePD(wl, setup string, rs []result, ts float64) PDRow {
	row := PDRow{Workload: wl, Setup: setup, Requests: len(rs)}
	var ttft, itl, tpot, e2e []float64
	out := 0
	var first, last time.Duration = math.MaxInt64, 0
	sec := func(d time.Duration) float64 { return d.Seconds() / ts }
	for _, r := range rs {
		if !r.ok {
			continue
		}
		row.OK++
		ttft = append(ttft, sec(r.ttft-r.start))
		e2e = append(e2e, sec(r.end-r.start))
		for _, g := range r.gaps {
			itl = append(itl, sec(g))
		}
		if r.completed > 1 {
			tpot = append(tpot, sec(r.end-r.ttft)/float64(r.completed-1))
		}
		out += r.completed
		first, last = min(first, r.start), max(last, r.end)
	}
	if row.OK == 0 {
		return row
	}
	row.TTFTP50, row.TTFTP90 = quantile(ttft, .5), quantile(ttft, .9)
	row.E2EP50, row.E2EP95 = quantile(e2e, .5), quantile(e2e, .95)
	row.OutputTokPerSec = float64(out) / sec(last-first)
	if len(itl) > 0 {
		row.ITLP50, row.ITLP90, row.ITLP99 = quantile(itl, .5), quantile(itl, .9), quantile(itl, .99)
		sum := 0.0
		for _, v := range itl {
			sum += v
		}
		row.ITLMean = sum / float64(len(itl))
	}
	if len(tpot) > 0 {
		row.TPOTP50, row.TPOTP90 = quantile(tpot, .5), quantile(tpot, .9)
	}
	return row
}

// PDMarkdown renders one table per workload and the target checks.
func PDMarkdown(rows []PDRow, o PDOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d simulated engines (`%s`), time scale %g, connector `%s`; times are simulated seconds. ", o.Engines, o.Profile, o.TimeScale, o.Connector)
	b.WriteString("Every setup runs on a fresh fleet and router with the same seeded arrivals; requests stream with `ignore_eos`. ")
	b.WriteString("Disaggregated setups put all engines in one pairing group (any prefill engine can hand over to any decode engine). ")
	b.WriteString("ITL is every gap between two streamed tokens; TPOT is per request (E2E − TTFT)/(output − 1); transfer is the simulator's modelled KV transfer time for the mean uncached prompt; *decode only* is the share of requests the decider sent straight to a decode engine. ")
	b.WriteString("The engines run on the wall clock (scaled): *lag p99* is how late the bench process woke from 5 ms sleeps (a few ms or more means a disturbed run).\n")
	if o.Note != "" {
		b.WriteString("\n" + o.Note + "\n")
	}
	about := map[string]string{}
	for _, w := range o.Workloads {
		about[w.Name] = w.About
	}
	wl := ""
	for _, r := range rows {
		if r.Workload != wl {
			wl = r.Workload
			fmt.Fprintf(&b, "\n### %s\n\n", wl)
			if a := about[wl]; a != "" {
				b.WriteString(a + "\n\n")
			}
			b.WriteString("| setup | ok | output tok/s | TTFT p50 | TTFT p90 | ITL p50 | ITL p90 | ITL p99 | ITL mean | TPOT p50 | TPOT p90 | E2E p50 | E2E p95 | transfer | decode only | lag p99 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.0f | %.3f s | %.3f s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f s | %.2f s | %.1f ms | %.0f %% | %.1f ms |\n",
			r.Setup, r.OK, r.Requests, r.OutputTokPerSec, r.TTFTP50, r.TTFTP90, 1000*r.ITLP50, 1000*r.ITLP90, 1000*r.ITLP99, 1000*r.ITLMean, 1000*r.TPOTP50, 1000*r.TPOTP90,
			r.E2EP50, r.E2EP95, 1000*r.TransferMean, 100*r.DecodeOnly, float64(r.LagP99.Microseconds())/1000)
	}
	if cs := PDTargets(rows); len(cs) > 0 {
		b.WriteString("\n### Targets\n\n")
		b.WriteString("Long input: the best disaggregated setup cuts ITL p90 at least 3× against aggregated while its TTFT p90 grows less than 50 %. ")
		b.WriteString("Short or mostly cached prompts: the decider's TTFT p90 is within 10 % of aggregated and at least 30 % below always disaggregating (same split).\n\n")
		b.WriteString("| workload | check | measured | met |\n|---|---|---|---|\n")
		for _, c := range cs {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Workload, c.Check, c.Ours, yesNo(c.Met))
		}
	}
	return b.String()
}

// PDTargets evaluates the targets on the rows.
func PDTargets(rows []PDRow) []TargetCheck {
	byWL := map[string]map[string]PDRow{}
	var order []string
	for _, r := range rows {
		if byWL[r.Workload] == nil {
			byWL[r.Workload] = map[string]PDRow{}
			order = append(order, r.Workload)
		}
		byWL[r.Workload][r.Setup] = r
	}
	var out []TargetCheck
	for _, wl := range order {
		m := byWL[wl]
		agg, ok := m[SetupAggregated]
		if !ok {
			continue
		}
		short, _, _ := strings.Cut(wl, " (")
		if strings.HasPrefix(wl, "long input") {
			best := ""
			for name, r := range m {
				if name == SetupAggregated || r.OK == 0 {
					continue
				}
				if best == "" || r.ITLP90 < m[best].ITLP90 {
					best = name
				}
			}
			if best == "" {
				continue
			}
			r := m[best]
			out = append(out,
				TargetCheck{Workload: short, Check: "ITL p90 ≥ 3× lower than aggregated", Ours: fmt.Sprintf("%s %.1f ms vs %.1f ms (%.1f×)", best, 1000*r.ITLP90, 1000*agg.ITLP90, agg.ITLP90/max(r.ITLP90, 1e-9)), Met: agg.ITLP90 >= 3*r.ITLP90},
				TargetCheck{Workload: short, Check: "(for reference) ITL p99 and mean against aggregated", Ours: fmt.Sprintf("%s p99 %.1f vs %.1f ms (%.1f×), mean %.1f vs %.1f ms (%.1f×)", best, 1000*r.ITLP99, 1000*agg.ITLP99, agg.ITLP99/max(r.ITLP99, 1e-9), 1000*r.ITLMean, 1000*agg.ITLMean, agg.ITLMean/max(r.ITLMean, 1e-9)), Met: agg.ITLP99 >= 3*r.ITLP99},
				TargetCheck{Workload: short, Check: "TTFT p90 grows < 50 %", Ours: fmt.Sprintf("%s %.3f s vs %.3f s (%+.0f %%)", best, r.TTFTP90, agg.TTFTP90, 100*(r.TTFTP90/max(agg.TTFTP90, 1e-9)-1)), Met: r.TTFTP90 < 1.5*agg.TTFTP90})
			continue
		}
		for _, split := range []string{"PD 1:3", "PD 2:2", "PD 3:1"} {
			dec, ok1 := m[split+" + decider"]
			alw, ok2 := m[split]
			if !ok1 || !ok2 {
				continue
			}
			out = append(out,
				TargetCheck{Workload: short, Check: split + " decider: TTFT p90 within 10 % of aggregated", Ours: fmt.Sprintf("%.3f s vs %.3f s (%+.0f %%)", dec.TTFTP90, agg.TTFTP90, 100*(dec.TTFTP90/max(agg.TTFTP90, 1e-9)-1)), Met: dec.TTFTP90 <= 1.1*agg.TTFTP90},
				TargetCheck{Workload: short, Check: split + " decider: TTFT p90 ≥ 30 % below always disaggregating", Ours: fmt.Sprintf("%.3f s vs %.3f s (%+.0f %%)", dec.TTFTP90, alw.TTFTP90, 100*(dec.TTFTP90/max(alw.TTFTP90, 1e-9)-1)), Met: dec.TTFTP90 <= 0.7*alw.TTFTP90})
		}
	}
	slices.SortStableFunc(out, func(a, b TargetCheck) int { return strings.Compare(a.Workload, b.Workload) })
	return out
}

// PDSVG plots TTFT p90, ITL p90 and E2E p95 per setup and workload.
func PDSVG(rows []PDRow) string {
	var workloads, setups []string
	wi, si := map[string]int{}, map[string]int{}
	for _, r := range rows {
		if _, ok := wi[r.Workload]; !ok {
			wi[r.Workload] = len(workloads)
			workloads = append(workloads, r.Workload)
		}
		if _, ok := si[r.Setup]; !ok {
			si[r.Setup] = len(setups)
			setups = append(setups, r.Setup)
		}
	}
	metrics := []barMetric{{"TTFT p90 (s, lower is better)", "%.3g"}, {"ITL p90 (ms, lower is better)", "%.3g"}, {"E2E p95 (s, lower is better)", "%.3g"}}
	vals := make([][][]float64, len(workloads))
	has := make([][]bool, len(workloads))
	for w := range vals {
		vals[w] = [][]float64{make([]float64, len(setups)), make([]float64, len(setups)), make([]float64, len(setups))}
		has[w] = make([]bool, len(setups))
	}
	for _, r := range rows {
		w, s := wi[r.Workload], si[r.Setup]
		vals[w][0][s], vals[w][1][s], vals[w][2][s] = r.TTFTP90, 1000*r.ITLP90, r.E2EP95
		has[w][s] = r.OK > 0
	}
	return panelsSVG("Prefill/decode disaggregation per workload (simulated seconds)", workloads, setups, metrics, vals, has)
}
