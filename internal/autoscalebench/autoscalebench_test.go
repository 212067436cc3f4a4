package autoscalebench

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTraceShape(t *testing.T) {
	tr := DefaultTrace(200*time.Second, 4)
	if err := tr.Validate(); err != nil {
		t.Fatal(err)
	}
	at := func(frac float64) time.Duration { return time.Duration(frac * float64(tr.Duration)) }
	// The day rises from its floor to the base and back.
	if got := tr.Rate(0); math.Abs(got-0.6) > 1e-9 {
		t.Errorf("rate at 0 = %v, want the floor 0.6", got)
	}
	if got := tr.Rate(at(tr.DayEnd / 2)); math.Abs(got-4) > 1e-6 {
		t.Errorf("rate at noon = %v, want 4", got)
	}
	// The burst is a 5x step.
	bf, bt := tr.Burst()
	before, in := tr.Rate(bf-time.Millisecond), tr.Rate(bf)
	if r := in / before; r < 4.99 || r > 5.01 {
		t.Errorf("burst step ×%.3f, want ×5", r)
	}
	if r := tr.Rate(bt) / tr.Rate(bt-time.Millisecond); r > 0.21 {
		t.Errorf("burst does not end at %s: ×%.3f", bt, r)
	}
	// The night is idle.
	nf, nt := tr.Night()
	for d := nf; d < nt; d += time.Second {
		if tr.Rate(d) != 0 {
			t.Fatalf("rate %v at %s, in the night", tr.Rate(d), d)
		}
	}
	if tr.Rate(nt) <= 0 || tr.Rate(tr.Duration-time.Millisecond) <= tr.Rate(nt) {
		t.Errorf("the morning does not ramp up: %v then %v", tr.Rate(nt), tr.Rate(tr.Duration-time.Millisecond))
	}
	if p := tr.Peak(); math.Abs(p-in) > 0.2 || p < in {
		t.Errorf("peak %v, want the burst's top (≥ %v)", p, in)
	}
	// Arrivals follow the rate and are reproducible.
	a, b := tr.Arrivals(7), tr.Arrivals(7)
	if len(a) != len(b) || a[len(a)/2] != b[len(b)/2] {
		t.Fatal("arrivals differ for one seed")
	}
	want := tr.Expected(0, tr.Duration)
	if n := float64(len(a)); math.Abs(n-want) > 4*math.Sqrt(want) {
		t.Errorf("%v arrivals, want about %.0f", n, want)
	}
	for _, x := range a {
		if x >= nf && x < nt {
			t.Fatalf("arrival at %s, in the night", x)
		}
	}
	inBurst := 0
	for _, x := range a {
		if x >= bf && x < bt {
			inBurst++
		}
	}
	if wb := tr.Expected(bf, bt); math.Abs(float64(inBurst)-wb) > 4*math.Sqrt(wb) {
		t.Errorf("%d arrivals in the burst, want about %.0f", inBurst, wb)
	}
	bad := tr
	bad.BurstAt = 0.4
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("a burst past the day's end: %v", err)
	}
}

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestReplicaSeconds(t *testing.T) {
	pods := []Pod{
		{Name: "before", Created: at(-10), Ready: at(-5)},                              // alive all along: 100
		{Name: "mid", Created: at(20), Seen: at(20.4), Ready: at(31), Deleted: at(50)}, // 30
		{Name: "seen-first", Created: at(61), Seen: at(60.5), Deleted: at(70)},         // 9.5 (watch saw it before the second-precision stamp)
		{Name: "after", Created: at(120), Deleted: at(130)},                            // outside
		{Name: "tail", Created: at(90), Deleted: at(150)},                              // clipped: 10
	}
	if got := ReplicaSeconds(pods, at(0), at(100)); math.Abs(got-149.5) > 1e-9 {
		t.Errorf("replica-seconds %v, want 149.5", got)
	}
	if n := ReadyCount(pods, at(40)); n != 2 {
		t.Errorf("%d ready at 40 s, want 2", n)
	}
	term := Pod{Created: at(0), Ready: at(1), Terminating: at(5), Deleted: at(9)}
	if term.ReadyAt(at(6)) || !term.ExistsAt(at(6)) || term.ExistsAt(at(9)) {
		t.Error("a terminating pod is paid for but not ready; a deleted one neither")
	}
}

func TestSummaryAndPercentiles(t *testing.T) {
	var reqs []Request
	for i := 1; i <= 100; i++ {
		reqs = append(reqs, Request{OK: true, TTFT: time.Duration(i) * 10 * time.Millisecond})
	}
	// Two cold-start requests, slow; one failure.
	reqs = append(reqs, Request{OK: true, TTFT: 12 * time.Second, ColdStart: true}, Request{OK: true, TTFT: 11 * time.Second, ColdStart: true},
		Request{Status: 504, Err: "model starting"})
	s := Summarize(reqs, 500*time.Millisecond)
	if s.Requests != 103 || s.Failed != 1 || s.ColdRequests != 2 {
		t.Fatalf("counts %+v", s)
	}
	if s.P50 != 510*time.Millisecond || s.P90 != 920*time.Millisecond || s.P99 != 11*time.Second {
		t.Errorf("p50/p90/p99 = %s/%s/%s, want 510ms/920ms/11s", s.P50, s.P90, s.P99)
	}
	if want := 50.0 / 103; math.Abs(s.WithinSLO-want) > 1e-9 {
		t.Errorf("within SLO %v, want %v", s.WithinSLO, want)
	}
	if want := 50.0 / 101; math.Abs(s.WithinSLOWarm-want) > 1e-9 {
		t.Errorf("within SLO outside cold starts %v, want %v (the failure counts against it)", s.WithinSLOWarm, want)
	}
	if p := Percentile([]time.Duration{3, 1, 2}, 1); p != 3 {
		t.Errorf("p100 = %v", p)
	}
	if p := Percentile(nil, 0.5); p != 0 {
		t.Errorf("empty percentile %v", p)
	}
}

func TestColdStartSplit(t *testing.T) {
	// A pod serves until it is scaled down at 30 s; requests at 40 s and
	// 41 s find none ready: the router holds them, the autoscaler raises
	// replicas at 40.3 s, the engine runs at 40.8 s, is ready at 51 s,
	// and the first held request's first token comes at 51.2 s.
	pods := []Pod{
		{Name: "a", Created: at(0), Running: at(0.5), Ready: at(10), Terminating: at(30), Deleted: at(35)},
		{Name: "b", Created: at(40), Seen: at(40.5), Running: at(40.8), Ready: at(51)},
	}
	changes := []ReplicaChange{{At: at(-1), Replicas: 1}, {At: at(30), Replicas: 0}, {At: at(40.3), Replicas: 1}}
	reqs := []Request{
		{Sent: at(20), OK: true, TTFT: 50 * time.Millisecond},
		{Sent: at(29.9), OK: true, TTFT: 60 * time.Millisecond},
		{Sent: at(40), Offset: 40 * time.Second, OK: true, TTFT: 11200 * time.Millisecond},
		{Sent: at(41), OK: true, TTFT: 10300 * time.Millisecond},
		{Sent: at(52), OK: true, TTFT: 50 * time.Millisecond},
	}
	cs := ColdStarts(reqs, pods, changes)
	if len(cs) != 1 {
		t.Fatalf("%d cold starts, want 1: %+v", len(cs), cs)
	}
	c := cs[0]
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	if c.Held != 2 || c.Pod != "b" || c.Offset != 40*time.Second {
		t.Errorf("held %d by %s at %s, want 2 by b at 40s", c.Held, c.Pod, c.Offset)
	}
	if ms(c.Decision) != 300 || ms(c.PodStart) != 500 || ms(c.EngineReady) != 10200 || ms(c.Release) != 200 || ms(c.Total) != 11200 {
		t.Errorf("split %s + %s + %s + %s = %s, want 300ms + 500ms + 10.2s + 200ms = 11.2s", c.Decision, c.PodStart, c.EngineReady, c.Release, c.Total)
	}
	if c.Overhead() != 500*time.Millisecond {
		t.Errorf("overhead %s, want 500ms", c.Overhead())
	}
	if !reqs[2].ColdStart || !reqs[3].ColdStart || reqs[1].ColdStart || reqs[4].ColdStart {
		t.Errorf("cold-start marks %v %v %v %v", reqs[1].ColdStart, reqs[2].ColdStart, reqs[3].ColdStart, reqs[4].ColdStart)
	}
	// A request served by a pod still draining is no cold start.
	drained := []Request{{Sent: at(30.5), OK: true, TTFT: 100 * time.Millisecond}}
	if cs := ColdStarts(drained, pods, changes); len(cs) != 0 {
		t.Errorf("a request answered before any pod was ready counted as a cold start: %+v", cs)
	}
}

func TestBurstAbsorption(t *testing.T) {
	slo := time.Second
	reqs := []Request{
		{Offset: 9 * time.Second, OK: true, TTFT: 3 * time.Second}, // before the burst
		{Offset: 10 * time.Second, OK: true, TTFT: 200 * time.Millisecond},
		{Offset: 12 * time.Second, OK: true, TTFT: 2 * time.Second},
		{Offset: 17 * time.Second, OK: true, TTFT: 1500 * time.Millisecond},
		{Offset: 19 * time.Second, OK: true, TTFT: 300 * time.Millisecond},
		{Offset: 31 * time.Second, OK: true, TTFT: 5 * time.Second}, // after it
	}
	abs, late := BurstAbsorption(reqs, 10*time.Second, 30*time.Second, slo)
	if abs != 7*time.Second || late != 2 {
		t.Errorf("absorbed after %s with %d late, want 7s and 2", abs, late)
	}
}

func TestManifestsCompressBehaviour(t *testing.T) {
	y := manifests(Config{Name: "burst-zero", Behavior: "burst"}, Engine{TTFT: 40 * time.Millisecond, ITL: 40 * time.Millisecond, MaxNumSeqs: 8, StartupDelay: 10 * time.Second},
		Scaling{RunningTarget: 4, WaitingTarget: 2, MaxReplicas: 7}, 7, 5)
	for _, want := range []string{"replicas: 0", "minReplicas: 0", "maxReplicas: 7", "stabilizationWindow: 24000ms", "panicModeHold: 12000ms", "percent: 1000", `"--startup-delay", "10s"`} {
		if !strings.Contains(y, want) {
			t.Errorf("manifests lack %q:\n%s", want, y)
		}
	}
	static := manifests(Config{Name: "static-peak", Static: true}, Engine{}, Scaling{}, 7, 5)
	if strings.Contains(static, "AutoscalingPolicy") || !strings.Contains(static, "replicas: 7") {
		t.Errorf("static manifests:\n%s", static)
	}
	if _, err := SelectConfigs([]string{"nope"}); err == nil {
		t.Error("an unknown configuration is accepted")
	}
}

func TestReleaseSplitFromAccessLog(t *testing.T) {
	path := t.TempDir() + "/router.log"
	log := `2026/12/05 12:00:40 coldstart: "msg"="holding requests"
[2026-12-05T12:00:40.010000000Z] "POST /v1/chat/completions HTTP/1.1" 200 model_name=bench request_id=autoscale-bench-2 tokens=24/32 timings=12000.00ms(11100.00+86.00+1240.00) held=11100.00ms
[2026-12-05T12:00:52.000000000Z] "POST /v1/chat/completions HTTP/1.1" 200 model_name=bench request_id=other tokens=24/32 timings=1.00ms(0.10+0.20+0.30)
`
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, err := readAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries["autoscale-bench-2"].held != 11100*time.Millisecond {
		t.Fatalf("entries %+v", entries)
	}
	reqs := []Request{{ID: "autoscale-bench-2", Sent: at(40), OK: true, TTFT: 11200 * time.Millisecond}}
	cs := []ColdStart{{Request: "autoscale-bench-2", readyAt: at(51)}}
	splitRelease(cs, reqs, entries)
	// Released at 40.01 + 11.1 = 51.11 s: 110 ms after Ready; the first
	// token at 51.2 s, 90 ms later.
	if !cs[0].SplitKnown || cs[0].RouterRelease.Milliseconds() != 110 || cs[0].EngineFirstToken.Milliseconds() != 90 {
		t.Errorf("split %+v", cs[0])
	}
}
