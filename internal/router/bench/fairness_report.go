package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

func (r *FairnessResult) run(scenario, policy string) *FairRun {
	for i := range r.Runs {
		if r.Runs[i].Scenario == scenario && r.Runs[i].Policy == policy {
			return &r.Runs[i]
		}
	}
	return nil
}

// otherCell is the count of other failures with their statuses.
func otherCell(t TenantStats) string {
	if t.Other == 0 {
		return "0"
	}
	codes := make([]int, 0, len(t.OtherCodes))
	for c := range t.OtherCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d× %d", t.OtherCodes[c], c))
	}
	return fmt.Sprintf("%d (%s)", t.Other, strings.Join(parts, ", "))
}

func secs(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.0f ms", 1000*v)
	}
	return fmt.Sprintf("%.2f s", v)
}

func usec(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d.Nanoseconds())/1000) }

// FairnessMarkdown renders the method, the tables and the targets.
func FairnessMarkdown(r *FairnessResult) string {
	o := r.Options
	var b strings.Builder
	fmt.Fprintf(&b, "## Method\n\n")
	fmt.Fprintf(&b, "A real router (`internal/router/runner`, Kthena's default scheduling, tenant from the trusted header `%s`) in front of %d simulated engines (`internal/sim`) with %d slots each (`max_num_seqs`; beyond them requests wait in the engine, first come first served), fixed step times (prefill step %s, decode step %s), over real sockets in one process. ",
		fairTenantHeader, o.Engines, o.MaxNumSeqs, fairTTFT, fairITL)
	fmt.Fprintf(&b, "Every request streams about 200 prompt tokens and %d output tokens (±30 %%, `ignore_eos`); the fleet's nominal capacity is %.1f requests/s (every slot busy). ", fairOutput, r.CapacityReqs)
	fmt.Fprintf(&b, "Each policy runs each scenario for %s on a fresh fleet and router; requests still running at the end are cut and not counted. ", o.Duration)
	fmt.Fprintf(&b, "Served tokens are the engines' usage of completed requests, weighted as VTC (input + 2 × output), counted at completion; throughput and per-tenant rates are over the run after a %s warm-up; Jain's index is computed per %s window of weighted served tokens (equal weights) after the warm-up, mean and minimum over the windows (in (b) and (c) demand is unequal by design: there the index only describes the split). TTFT percentiles count the requests cut at the end of the run (*cut*) with the time they had waited, a lower bound, so that a policy cannot hide the requests it starves.\n\n", o.Warmup, o.Window)
	b.WriteString("Policies:\n\n")
	b.WriteString("- **" + PolicyFCFS + "**: the router without the fair queue; requests go to the engines at once and wait in their queues.\n")
	fmt.Fprintf(&b, "- **%s**: upstream's fairness mode reproduced in the bench (`fairness_policy.go`) in front of the same router without the queue: priority = weighted tokens (1·input + 2·output) of the user in a 5-minute sliding window, fixed when the request is queued, lower first, one user's requests in arrival order, semaphore mode with %d requests in flight (the fleet's slots; upstream's default ticker mode lets 100 requests/s through whatever the engines do), 60 s timeout (504). No priority classes.\n", PolicyUpstreamFair, o.Engines*o.MaxNumSeqs)
	perPod := o.PerPod
	if perPod == 0 {
		perPod = o.MaxNumSeqs
	}
	fmt.Fprintf(&b, "- **%s**: `fairness: {enabled: true, maxInFlightPerPod: %d}` (engines with %d slots).\n", PolicyKthenaFixed, perPod, o.MaxNumSeqs)
	fmt.Fprintf(&b, "- **%s**: `fairness: {enabled: true}`, the default: saturation read from the engines' scraped queues.\n\n", PolicyKthenaSignal)
	b.WriteString("*lag p99* is how late the bench process woke from 5 ms sleeps (the engines run on the wall clock; more than a few ms means a disturbed run). Queue wait is the time in the policy's queue of admitted requests (Kthena: the router's `kthena_router_fairness_wait_seconds`, p90 interpolated in its buckets; upstream: the gate; FCFS: none in the router, the engines' queues show in TTFT).\n")
	if o.Note != "" {
		b.WriteString("\n" + o.Note + "\n")
	}
	for _, sc := range fairScenarios(o) {
		if r.run(sc.name, PolicyFCFS) == nil && r.run(sc.name, PolicyKthenaFixed) == nil {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", sc.title, sc.about)
		b.WriteString("| policy | Jain mean | Jain min | output tok/s | weighted tok/s | vs FCFS | queue wait mean | queue wait p90 | lag p99 |\n|---|---|---|---|---|---|---|---|---|\n")
		fcfs := r.run(sc.name, PolicyFCFS)
		for _, p := range FairPolicies {
			run := r.run(sc.name, p)
			if run == nil {
				continue
			}
			vs := "–"
			if fcfs != nil && fcfs.OutTokPerSec > 0 {
				vs = fmt.Sprintf("%.1f %%", 100*run.OutTokPerSec/fcfs.OutTokPerSec)
			}
			wm, wp := "–", "–"
			if run.HaveWait {
				wm, wp = secs(run.WaitMean), secs(run.WaitP90)
			}
			fmt.Fprintf(&b, "| %s | %.3f | %.3f | %.0f | %.0f | %s | %s | %s | %.1f ms |\n", p, run.JainMean, run.JainMin, run.OutTokPerSec, run.WeightedTokPerSec, vs, wm, wp, float64(run.LagP99.Microseconds())/1000)
		}
		b.WriteString("\nPer tenant:\n\n| policy | tenant | sent | ok | 429 | 504 | cut | other | weighted tok/s | output tok/s | TTFT p50 | TTFT p90 |")
		if sc.burstTo > 0 {
			b.WriteString(" TTFT p50 during burst | TTFT p90 during burst |")
		}
		b.WriteString("\n|---|---|---|---|---|---|---|---|---|---|---|---|")
		if sc.burstTo > 0 {
			b.WriteString("---|---|")
		}
		b.WriteString("\n")
		for _, p := range FairPolicies {
			run := r.run(sc.name, p)
			if run == nil {
				continue
			}
			for _, t := range run.Tenants {
				name := t.Tenant
				if t.Priority != 0 {
					name += fmt.Sprintf(" (priority %d)", t.Priority)
				}
				fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %s | %.0f | %.0f | %s | %s |", p, name, t.Sent, t.OK, t.R429, t.R504, t.Cut, otherCell(t), t.WeightedTokPerSec, t.OutTokPerSec, secs(t.TTFTP50), secs(t.TTFTP90))
				if sc.burstTo > 0 {
					if t.BurstN > 0 {
						fmt.Fprintf(&b, " %s | %s |", secs(t.BurstTTFTP50), secs(t.BurstTTFTP90))
					} else {
						b.WriteString(" – | – |")
					}
				}
				b.WriteString("\n")
			}
		}
		if sc.name == scenarioBurst && r.Solo != nil {
			fmt.Fprintf(&b, "\nSolo run of `steady` (same rate, alone, %s, FCFS router): %d requests, TTFT p50 %s, p90 %s.\n", o.Solo, r.Solo.OK, secs(r.Solo.TTFTP50), secs(r.Solo.TTFTP90))
		}
	}
	if ov := r.Overhead; ov != nil {
		b.WriteString("\n## Added latency when nothing waits\n\n")
		fmt.Fprintf(&b, "One engine answering at once (1 ms steps), `max_tokens: 1`, non-streaming, one request at a time, rotating between the three paths so that they share the machine's state; %d requests per path. Fairness on is Kthena's default (`fairness: {enabled: true}`): every request goes through `Admit`, reads the engines' saturation and `Release`s. `Admit + Release` is the queue's own cost per request, timed over 200,000 iterations on an empty queue.\n\n", ov.On.N)
		b.WriteString("| path | p50 | p90 | p99 |\n|---|---|---|---|\n")
		for _, p := range []struct {
			name string
			s    LatencyStats
		}{{"engine directly", ov.Direct}, {"router, fairness off", ov.Off}, {"router, fairness on", ov.On}} {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", p.name, usec(p.s.P50), usec(p.s.P90), usec(p.s.P99))
		}
		fmt.Fprintf(&b, "\nFairness on minus off: p50 %+.1f µs, p90 %+.1f µs. `Admit + Release` on an empty queue: %.2f µs.\n",
			float64((ov.On.P50-ov.Off.P50).Nanoseconds())/1000, float64((ov.On.P90-ov.Off.P90).Nanoseconds())/1000, float64(ov.AdmitRelease.Nanoseconds())/1000)
	}
	if len(r.Limits) > 0 {
		b.WriteString("\n## Rate-limit exactness\n\n")
		b.WriteString("`ModelRoute.spec.rateLimit: {inputTokensPerUnit: N, unit: second}` (global: with `global.redis.address`, one real `redis-server`); clients send the same prompt at twice the limit, evenly spaced (global: alternating between the two routers). The bucket starts full, so the limit allows N × (1 + span) tokens over the span from the first request to the last; admitted tokens are admitted requests × the tokens the router counts for the prompt (four bytes per token, no tokenizer configured).\n\n")
		b.WriteString("| mode | routers | limit (tok/s) | tokens/request | span | sent | admitted | 429 | admitted tokens | allowed tokens | error |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, l := range r.Limits {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f s | %d | %d | %d | %.0f | %.0f | %+.2f %% |\n", l.Mode, l.Routers, l.Limit, l.TokensPerRequest, l.Span.Seconds(), l.Sent, l.Admitted, l.R429, l.Measured, l.Expected, 100*l.Error())
		}
	}
	if cs := FairnessTargets(r); len(cs) > 0 {
		b.WriteString("\n## Targets\n\n| check | measured | met |\n|---|---|---|\n")
		for _, c := range cs {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Check, c.Ours, yesNo(c.Met))
		}
	}
	return b.String()
}

// FairnessTargets evaluates the targets.
func FairnessTargets(r *FairnessResult) []TargetCheck {
	var out []TargetCheck
	kthena := []string{PolicyKthenaFixed, PolicyKthenaSignal}
	if f := r.run(scenarioSkew, PolicyFCFS); f != nil {
		for _, p := range kthena {
			if k := r.run(scenarioSkew, p); k != nil {
				u := r.run(scenarioSkew, PolicyUpstreamFair)
				up := ""
				if u != nil {
					up = fmt.Sprintf(", upstream formula %.3f", u.JainMean)
				}
				out = append(out, TargetCheck{Check: p + ": Jain ≥ 0.95 under skew (a)", Ours: fmt.Sprintf("%.3f (min %.3f); FCFS %.3f%s", k.JainMean, k.JainMin, f.JainMean, up), Met: k.JainMean >= 0.95})
			}
		}
	}
	for _, sc := range []string{scenarioSkew, scenarioBurst, scenarioPriority} {
		f := r.run(sc, PolicyFCFS)
		if f == nil || f.OutTokPerSec == 0 {
			continue
		}
		for _, p := range kthena {
			if k := r.run(sc, p); k != nil {
				check := TargetCheck{Check: fmt.Sprintf("%s: throughput ≥ 97 %% of FCFS (%s)", p, sc), Ours: fmt.Sprintf("%.0f vs %.0f output tok/s (%.1f %%)", k.OutTokPerSec, f.OutTokPerSec, 100*k.OutTokPerSec/f.OutTokPerSec), Met: k.OutTokPerSec >= 0.97*f.OutTokPerSec}
				if sc == scenarioBurst {
					// The fleet is saturated only while the burst lasts:
					// what FCFS serves beyond is the burst it queued
					// (in the engines) and Kthena refused with 429.
					check.Check = "(for reference, not saturated after the burst) " + check.Check
				}
				out = append(out, check)
			}
		}
	}
	if r.Solo != nil && r.Solo.TTFTP90 > 0 {
		for _, p := range FairPolicies {
			k := r.run(scenarioBurst, p)
			if k == nil || k.Tenants[0].BurstN == 0 {
				continue
			}
			t := k.Tenants[0]
			check := TargetCheck{Check: p + ": steady tenant's TTFT p90 during the burst ≤ 1.5× solo (b)", Ours: fmt.Sprintf("%s vs %s (%.2f×)", secs(t.BurstTTFTP90), secs(r.Solo.TTFTP90), t.BurstTTFTP90/r.Solo.TTFTP90), Met: t.BurstTTFTP90 <= 1.5*r.Solo.TTFTP90}
			if p == PolicyFCFS || p == PolicyUpstreamFair {
				check.Check = "(for comparison) " + check.Check
			}
			out = append(out, check)
		}
	}
	if ov := r.Overhead; ov != nil {
		d := ov.On.P50 - ov.Off.P50
		out = append(out, TargetCheck{Check: "added latency p50 ≤ 50 µs when nothing waits (fairness on − off)", Ours: fmt.Sprintf("%+.1f µs (Admit + Release %.2f µs)", float64(d.Nanoseconds())/1000, float64(ov.AdmitRelease.Nanoseconds())/1000), Met: d <= 50*time.Microsecond})
	}
	for _, l := range r.Limits {
		tol := 0.01
		if l.Mode == "global" {
			tol = 0.05
		}
		out = append(out, TargetCheck{Check: fmt.Sprintf("%s limit within %.0f %% (%d router(s))", l.Mode, 100*tol, l.Routers), Ours: fmt.Sprintf("%+.2f %%", 100*l.Error()), Met: l.Error() <= tol && l.Error() >= -tol})
	}
	return out
}

// FairnessSVG plots each tenant's weighted served tokens per second over
// time: a column per scenario, a row per policy.
func FairnessSVG(r *FairnessResult) string {
	scs := []string{scenarioSkew, scenarioBurst, scenarioPriority}
	titles := map[string]string{scenarioSkew: "(a) skew 1:1:4:10", scenarioBurst: "(b) burst", scenarioPriority: "(c) priority classes"}
	var cols []string
	for _, sc := range scs {
		for _, p := range FairPolicies {
			if r.run(sc, p) != nil {
				cols = append(cols, sc)
				break
			}
		}
	}
	const w, h = 640, 360
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif">`+"\n", w*max(len(cols), 1), h*len(FairPolicies))
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	for ci, sc := range cols {
		for pi, p := range FairPolicies {
			run := r.run(sc, p)
			if run == nil {
				continue
			}
			var ss []series
			for _, t := range run.Tenants {
				s := series{name: t.Tenant}
				for i, v := range t.series {
					s.x = append(s.x, (float64(i)+0.5)*run.BinSeconds)
					s.y = append(s.y, v)
				}
				ss = append(ss, s)
			}
			panel := lineSVG(titles[sc]+": "+p, "time (s)", "weighted tokens/s served", ss)
			panel = strings.Replace(panel, `<svg xmlns="http://www.w3.org/2000/svg" `, fmt.Sprintf(`<svg x="%d" y="%d" `, ci*w, pi*h), 1)
			b.WriteString(panel)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}
