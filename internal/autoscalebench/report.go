package autoscalebench

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"
	"time"
)

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// staticCost is the static configuration's replica-seconds (0 if not run).
func staticCost(rs []Result) float64 {
	for _, r := range rs {
		if r.Config.Static && r.Err == "" {
			return r.ReplicaSeconds
		}
	}
	return 0
}

// Table is the main comparison table in Markdown.
func Table(rs []Result, o Options) string {
	var sb strings.Builder
	static := staticCost(rs)
	fmt.Fprintf(&sb, "| configuration | replica-s | vs static | TTFT p50 | p90 | p99 | within %s SLO | outside cold starts | failed or dropped | cold starts (router) | burst: late requests, last sent after | scale events |\n", ms(o.SLO))
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		if r.Err != "" {
			fmt.Fprintf(&sb, "| %s | failed: %s |||||||||||\n", r.Config.Name, strings.ReplaceAll(r.Err, "|", "/"))
			continue
		}
		s := r.Summary
		vs := "—"
		if static > 0 && !r.Config.Static {
			vs = fmt.Sprintf("%+.0f%%", 100*(r.ReplicaSeconds/static-1))
		}
		var ev []string
		for k, v := range r.ScaleEvents {
			ev = append(ev, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(ev)
		fmt.Fprintf(&sb, "| %s | %.0f | %s | %s | %s | %s | %.2f%% | %.2f%% | %d of %d | %d (%.0f) | %d, %s | %s |\n",
			r.Config.Name, r.ReplicaSeconds, vs, ms(s.P50), ms(s.P90), ms(s.P99), 100*s.WithinSLO, 100*s.WithinSLOWarm,
			s.Failed, s.Requests, len(r.ColdStarts), r.RouterColdStarts, r.BurstLate, secs(r.BurstAbsorbed), strings.Join(ev, ", "))
	}
	return sb.String()
}

// ColdStartTable lists every cold start's phases.
func ColdStartTable(rs []Result) string {
	var sb strings.Builder
	sb.WriteString("| configuration | at | held requests | scale decision | pod start | engine ready | router release | total | decision + release | of the release: router lets go / engine's first token |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	n := 0
	for _, r := range rs {
		for _, c := range r.ColdStarts {
			n++
			split := "n/a"
			if c.SplitKnown {
				split = secs(c.RouterRelease) + " / " + secs(c.EngineFirstToken)
			}
			fmt.Fprintf(&sb, "| %s | %.1f s | %d | %s | %s | %s | %s | %s | %s | %s |\n", r.Config.Name, c.Offset.Seconds(), c.Held,
				secs(c.Decision), secs(c.PodStart), secs(c.EngineReady), secs(c.Release), secs(c.Total), secs(c.Overhead()), split)
		}
	}
	if n == 0 {
		sb.WriteString("| (none) ||||||||||\n")
	}
	return sb.String()
}

// Check is one target of the issue, met or not, with the measurement.
type Check struct {
	Target string
	Met    bool
	Detail string
}

// Checks evaluates the targets.
func Checks(rs []Result, o Options) []Check {
	var out []Check
	static := staticCost(rs)
	for _, r := range rs {
		if r.Config.Static || r.Err != "" || static == 0 {
			continue
		}
		save := 1 - r.ReplicaSeconds/static
		ok := save >= 0.40 && r.Summary.WithinSLOWarm >= 0.99
		out = append(out, Check{Target: r.Config.Name + ": ≥ 40% fewer replica-seconds than static, ≥ 99% within SLO outside cold starts", Met: ok,
			Detail: fmt.Sprintf("%.0f%% fewer, %.2f%% within SLO", 100*save, 100*r.Summary.WithinSLOWarm)})
	}
	lost, total := 0, 0
	var routerLost float64
	for _, r := range rs {
		lost += r.Summary.Failed
		total += r.Summary.Requests
		routerLost += r.RouterHeldLost
	}
	out = append(out, Check{Target: "0 requests failed or dropped anywhere", Met: lost == 0 && routerLost == 0,
		Detail: fmt.Sprintf("%d of %d failed at the client; %.0f held requests not released by the router", lost, total, routerLost)})
	worst, worstRouter := time.Duration(-1), time.Duration(-1)
	nCold, nSplit := 0, 0
	for _, r := range rs {
		for _, c := range r.ColdStarts {
			nCold++
			worst = max(worst, c.Overhead())
			if c.SplitKnown {
				nSplit++
				worstRouter = max(worstRouter, c.Decision+c.RouterRelease)
			}
		}
	}
	if nCold > 0 {
		detail := fmt.Sprintf("worst of %d cold starts: %s from the first held request's send to its scale decision, plus from the pod's Ready to its first token", nCold, secs(worst))
		if nSplit > 0 {
			detail += fmt.Sprintf("; without the engine's queue and prefill after the router let it go: worst %s", secs(worstRouter))
		}
		out = append(out, Check{Target: "a cold start adds ≤ 1 s over the engine's start-up (scale decision + router release)", Met: worst <= time.Second, Detail: detail})
	}
	pw := PanicWindow(o.Compression)
	for _, r := range rs {
		if r.Config.Behavior != "burst" || r.Err != "" {
			continue
		}
		out = append(out, Check{Target: fmt.Sprintf("%s: the burst is absorbed within one panic window (%s)", r.Config.Name, secs(pw)), Met: r.BurstAbsorbed <= pw,
			Detail: fmt.Sprintf("requests missed the SLO until %s after the burst began (%d late)", secs(r.BurstAbsorbed), r.BurstLate)})
	}
	return out
}

// ChecksMarkdown renders the checks as a list.
func ChecksMarkdown(cs []Check) string {
	var sb strings.Builder
	for _, c := range cs {
		mark := "met"
		if !c.Met {
			mark = "**missed**"
		}
		fmt.Fprintf(&sb, "- %s: %s (%s)\n", c.Target, mark, c.Detail)
	}
	return sb.String()
}

// SVG draws one panel per configuration: pods alive and ready over the
// trace (left axis, replicas) and the request rate (right axis).
func SVG(rs []Result, tr Trace) string {
	const w, ph, l, r, t, gap = 760.0, 150.0, 55.0, 60.0, 40.0, 38.0
	var ok []Result
	maxRep := 1.0
	for _, x := range rs {
		if x.Err != "" {
			continue
		}
		ok = append(ok, x)
		for _, s := range samples(x, tr.Duration) {
			maxRep = max(maxRep, float64(s.alive))
		}
	}
	maxRep = math.Ceil(maxRep)
	maxRate := tr.Peak() * 1.1
	h := t + float64(len(ok))*(ph+gap) + 20
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" text-anchor="middle" font-size="14">Replicas and request rate over the trace, per configuration</text>`+"\n", w/2)
	legendY := 32.0
	for i, lg := range []struct{ c, n string }{{"#4e79a7", "pods alive (paid)"}, {"#59a14f", "pods ready"}, {"#bbbbbb", "request rate (right axis)"}} {
		x := l + float64(i)*190
		fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="12" height="4" fill="%s"/><text x="%.0f" y="%.0f" font-size="11">%s</text>`+"\n", x, legendY-4, lg.c, x+16, legendY, lg.n)
	}
	dur := tr.Duration.Seconds()
	for i, x := range ok {
		y0 := t + 10 + float64(i)*(ph+gap)
		y1 := y0 + ph
		px := func(s float64) float64 { return l + (w-l-r)*s/dur }
		pyR := func(v float64) float64 { return y1 - ph*v/maxRep }
		pyQ := func(v float64) float64 { return y1 - ph*v/maxRate }
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="12" font-weight="bold">%s</text>`+"\n", l, y0-4, html.EscapeString(x.Config.Name))
		fmt.Fprintf(&sb, `<path d="M%.0f,%.0f V%.0f H%.0f V%.0f" stroke="black" fill="none"/>`+"\n", l, y0, y1, w-r, y0)
		for k := 0; k <= int(maxRep); k += max(1, int(maxRep)/4) {
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="10">%d</text>`+"\n", l-4, pyR(float64(k))+3, k)
		}
		for k := 0; k <= 2; k++ {
			v := maxRate * float64(k) / 2
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="10" fill="#888">%.0f/s</text>`+"\n", w-r+4, pyQ(v)+3, v)
		}
		for k := 0; k <= 4; k++ {
			s := dur * float64(k) / 4
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="10">%.0f s</text>`+"\n", px(s), y1+12, s)
		}
		var rate, al, rd []string
		for s := 0.0; s <= dur; s += 0.5 {
			rate = append(rate, fmt.Sprintf("%.1f,%.1f", px(s), pyQ(tr.Rate(time.Duration(s*float64(time.Second))))))
		}
		for _, sm := range samples(x, tr.Duration) {
			al = append(al, fmt.Sprintf("%.1f,%.1f", px(sm.at), pyR(float64(sm.alive))))
			rd = append(rd, fmt.Sprintf("%.1f,%.1f", px(sm.at), pyR(float64(sm.ready))))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="#bbbbbb" stroke-width="1.5" points="%s"/>`+"\n", strings.Join(rate, " "))
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="#4e79a7" stroke-width="2" points="%s"/>`+"\n", strings.Join(al, " "))
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="#59a14f" stroke-width="1.5" stroke-dasharray="4,2" points="%s"/>`+"\n", strings.Join(rd, " "))
		for _, c := range x.ColdStarts {
			cx := px(c.Offset.Seconds())
			fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#e15759" stroke-dasharray="2,2"/><text x="%.1f" y="%.0f" font-size="9" fill="#e15759">cold %.1fs</text>`+"\n",
				cx, y0, cx, y1, cx+2, y0+10, c.Total.Seconds())
		}
	}
	fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="11" text-anchor="middle">time since the trace's start (wall seconds); red: cold starts (first held request to its first token)</text>`+"\n", w/2, h-6)
	sb.WriteString("</svg>\n")
	return sb.String()
}

type sample struct {
	at           float64
	alive, ready int
}

// samples are the pods alive and ready every half second of the trace.
func samples(x Result, d time.Duration) []sample {
	var out []sample
	for s := 0.0; s <= d.Seconds(); s += 0.5 {
		t := x.Start.Add(time.Duration(s * float64(time.Second)))
		a, r := 0, 0
		for _, p := range x.Pods {
			if p.ExistsAt(t) {
				a++
			}
			if p.ReadyAt(t) {
				r++
			}
		}
		out = append(out, sample{at: s, alive: a, ready: r})
	}
	return out
}

// Method describes how the run was set up, for the report.
func Method(o Options) string {
	tr := o.Trace
	bf, bt := tr.Burst()
	nf, nt := tr.Night()
	var sb strings.Builder
	sb.WriteString("## Method\n\n")
	fmt.Fprintf(&sb, "- **Platform**: each configuration runs on its own fresh local platform (`platform.Run`: etcd, kube-apiserver, the controller manager with the autoscaler, the router, engine pods as local `kthena-sim` processes), one after the other.\n")
	fmt.Fprintf(&sb, "- **Engine**: a simulated vLLM engine per replica: %s prefill step, %s per output token, at most %d requests running (more wait), start-up %s (its `/health` answers 503 until then; readiness probe every 1 s), 4 s drain on SIGTERM.\n",
		ms(o.Engine.TTFT), ms(o.Engine.ITL), o.Engine.MaxNumSeqs, o.Engine.StartupDelay)
	fmt.Fprintf(&sb, "- **Requests**: streaming chat completions of %d output tokens through the router, sent open-loop at Poisson arrival times drawn once (seed %d) from the trace, so every configuration gets the same requests at the same offsets. TTFT is measured at the client, to the first content token.\n", o.MaxTokens, o.Seed)
	fmt.Fprintf(&sb, "- **Trace** (%s, %.0f requests expected): a day from %.1f to %.1f req/s and back (a half sine over [0, %.0f s)); a burst of %g× the day's rate, a step, over [%.0f s, %.0f s) (peak %.1f req/s); a night without requests over [%.0f s, %.0f s); the next morning ramping from %.1f to %.1f req/s.\n",
		tr.Duration, tr.Expected(0, tr.Duration), tr.Base*tr.Floor, tr.Base, tr.at(tr.DayEnd).Seconds(), tr.BurstFactor, bf.Seconds(), bt.Seconds(), tr.Peak(), nf.Seconds(), nt.Seconds(), tr.Base*tr.MorningFrom, tr.Base*tr.MorningTo)
	fmt.Fprintf(&sb, "- **Compression**: the trace stands for %.0f minutes of traffic (%g× compressed), and the autoscaler's clock is compressed alike: its period is %s (15 s / %g) and every window, period and hold of the policies below is divided by %g. The engine's start-up and every request's latency are not compressed.\n",
		tr.Duration.Minutes()*o.Compression, o.Compression, o.SyncPeriod(), o.Compression, o.Compression)
	fmt.Fprintf(&sb, "- **Policies**: metrics `num_requests_running` (target %d per replica) and `num_requests_waiting` (target %d), read from the engine pods; tolerance 10%%; maxReplicas %d. static-peak has %d replicas, enough for the burst's peak at the running target.\n",
		o.Scaling.RunningTarget, o.Scaling.WaitingTarget, o.Scaling.MaxReplicas, o.StaticReplicas)
	sb.WriteString("\n| configuration | what |\n|---|---|\n")
	for _, c := range o.Configs {
		fmt.Fprintf(&sb, "| %s | %s |\n", c.Name, c.Description)
	}
	fmt.Fprintf(&sb, "\nBehaviours, before compression: *defaults* is the admission webhook's default (upstream's and Kthena's alike): scale-up by max(4, 100%%) per 1 min with no window, panic off, scale-down at any pace after a 5 min window. *burst* adds panic mode with the CRD's values (1000%%, threshold 200%%, hold 1 min, period 1 min) and a 2 min scale-down window.\n")
	fmt.Fprintf(&sb, "\n- **Measured**: replica-seconds are the pods' lives (from creation to deletion, as watched on the API server) within the trace: what the GPUs cost, start-up and drain included. TTFT percentiles are over answered requests; the SLO is **TTFT ≤ %s**; \"outside cold starts\" leaves out requests that arrived while no pod was ready. A failed or dropped request is any that did not end in 200 with a token and `[DONE]`. Cold starts are split with the local clock on the watch events (the API server's timestamps have second precision): scale decision (first held request sent → `spec.replicas` raised from 0), pod start (→ the engine's container running), engine ready (→ the pod's Ready condition, the engine's own start-up plus the probe), router release (→ the first held request's first token at the client, the engine's %s prefill included), itself split with the router's access log (the client sends an `X-Request-Id`; the log has when the request arrived and how long it was held) into the router letting the request go and the engine's queue and prefill. The burst column counts burst requests that missed the SLO and when the last of them was sent, after the burst's start; the burst target compares that with the panic window (1 min / %g = %s).\n",
		ms(o.SLO), ms(o.Engine.TTFT), o.Compression, secs(PanicWindow(o.Compression)))
	return sb.String()
}
