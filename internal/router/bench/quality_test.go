package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/tokenizer"
)

func TestShareGPTLengths(t *testing.T) {
	w := Workload{Kind: KindShareGPT, Groups: 4000, PerGroup: 1, Rate: 10, Seed: 1}
	var in, out int
	for _, q := range w.Requests() {
		n := len(strings.Fields(q.q))
		if n < 4 || n > 1024 || q.maxTokens < 4 || q.maxTokens > 1024 {
			t.Fatalf("lengths %d/%d outside 4–1024", n, q.maxTokens)
		}
		in += n
		out += q.maxTokens
	}
	// Means after the caps: ≈220 words of content (+≈10 template tokens) and ≈203.
	if m := float64(in) / 4000; m < 200 || m > 240 {
		t.Fatalf("mean input %.0f", m)
	}
	if m := float64(out) / 4000; m < 185 || m > 220 {
		t.Fatalf("mean output %.0f", m)
	}
}

func TestMultiTurnSessions(t *testing.T) {
	w := Workload{Kind: KindMultiTurn, Groups: 5, PerGroup: 3, SystemTokens: 50, HistoryTokens: 40, QuestionTokens: 10, OutputTokens: 20, Rate: 2, ThinkTime: 1, Seed: 3}
	ss := w.sessions()
	if len(ss) != 5 {
		t.Fatalf("%d sessions", len(ss))
	}
	for i, s := range ss {
		if len(s.turns) != 3 || len(s.think) != 2 || !s.chained || s.first != 3*i {
			t.Fatalf("session %d: %d turns, %d think times, chained %v, first %d", i, len(s.turns), len(s.think), s.chained, s.first)
		}
		if i > 0 && s.start < ss[i-1].start {
			t.Fatal("sessions not in start order")
		}
		if s.turns[0].system != ss[0].turns[0].system {
			t.Fatal("users must share the system prompt")
		}
	}
	if ss[0].turns[0].q == ss[1].turns[0].q {
		t.Fatal("users must have their own history")
	}
}

// TestMultiTurnCacheHit runs a small conversation workload on a simulated
// fleet with the oracle, which sends each round to the engine caching most of
// it: from the second round on, the engine must serve at least the previous
// round's prompt from its cache, so the conversation is really resent.
func TestMultiTurnCacheHit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	tok, err := tokenizer.New("")
	if err != nil {
		t.Fatal(err)
	}
	w := Workload{Name: "mt", Kind: KindMultiTurn, Groups: 6, PerGroup: 3, SystemTokens: 300, HistoryTokens: 600, QuestionTokens: 30, OutputTokens: 40, Rate: 20, ThinkTime: 0.2, Seed: 3}
	o := QualityOptions{Engines: 4, Profile: "llama-3.1-8b-h100", TimeScale: 1, Log: logr.Discard()}
	for _, p := range []Policy{{PolicyOracle, ""}} {
		ss := w.sessions()
		row, res, err := runPolicy(context.Background(), o, tok, w, p, ss)
		if err != nil {
			t.Fatal(err)
		}
		if row.OK != row.Requests {
			t.Fatalf("%s: %d/%d ok", p.Name, row.OK, row.Requests)
		}
		for _, s := range ss {
			for k := 1; k < len(s.turns); k++ {
				prev, cur := res[s.first+k-1], res[s.first+k]
				t.Logf("round %d: prompt %d, cached %d; previous prompt %d + answer %d", k+1, cur.prompt, cur.cached, prev.prompt, prev.completed)
				if cur.cached < prev.prompt-16 {
					t.Errorf("%s: round %d cached %d of %d tokens; the previous round's prompt had %d", p.Name, k+1, cur.cached, cur.prompt, prev.prompt)
				}
				if prev.text == "" {
					t.Errorf("%s: no answer text", p.Name)
				}
			}
		}
	}
}

// TestPDBenchSmoke runs the disaggregation bench on a tiny workload, fast:
// every setup must serve every request, the decider must send short prompts
// straight to decode, and the report must carry the target checks.
func TestPDBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	short := Workload{Name: "short prompts (smoke)", Groups: 12, PerGroup: 1, QuestionTokens: 60, OutputTokens: 8, Rate: 20, Seed: 1}
	long := Workload{Name: "long input (smoke)", Groups: 6, PerGroup: 1, QuestionTokens: 1500, OutputTokens: 8, Rate: 10, Seed: 2}
	o := PDOptions{Engines: 4, Profile: "llama-3.1-8b-h100", TimeScale: 0.2, Connector: "nixl", Workloads: []Workload{short, long}, Setups: PDSetups(), Log: logr.Discard()}
	rows, err := RunPD(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*len(o.Setups) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if r.OK != r.Requests {
			t.Fatalf("%s / %s: %d of %d requests answered", r.Workload, r.Setup, r.OK, r.Requests)
		}
		decider := strings.HasSuffix(r.Setup, "+ decider")
		if r.Workload == short.Name && decider && r.DecodeOnly < 0.99 {
			t.Fatalf("%s: decider sent %.0f %% of short prompts straight to decode", r.Setup, 100*r.DecodeOnly)
		}
		if r.Workload == long.Name && r.Setup != SetupAggregated && r.DecodeOnly > 0 {
			t.Fatalf("%s: long new prompts skipped prefill (%.0f %%)", r.Setup, 100*r.DecodeOnly)
		}
	}
	md := PDMarkdown(rows, o)
	if !strings.Contains(md, "ITL p90 ≥ 3× lower than aggregated") || !strings.Contains(md, "decider: TTFT p90 within 10 %") {
		t.Fatalf("report lacks target checks:\n%s", md)
	}
	if svg := PDSVG(rows); !strings.Contains(svg, "PD 2:2 + decider") {
		t.Fatal("plot lacks a setup")
	}
}

func TestClosedLoopSessions(t *testing.T) {
	w := Workload{Kind: KindClosed, Groups: 4, PerGroup: 25, SystemTokens: 20, QuestionTokens: 5, OutputTokens: 5, Clients: 30, Seed: 1}
	ss := w.sessions()
	if len(ss) != 30 {
		t.Fatalf("%d clients", len(ss))
	}
	n := 0
	for i, s := range ss {
		if s.start != 0 || s.chained || len(s.think) != len(s.turns)-1 || s.first != n {
			t.Fatalf("client %d: start %v, chained %v, %d think times for %d turns, first %d", i, s.start, s.chained, len(s.think), len(s.turns), s.first)
		}
		n += len(s.turns)
	}
	if n != 100 {
		t.Fatalf("%d requests", n)
	}
}

func TestWindowShare(t *testing.T) {
	// Cumulative arrivals per second on two engines.
	even := [][]int64{{0, 0}}
	herd := [][]int64{{0, 0}}
	for s := 1; s <= 20; s++ {
		even = append(even, []int64{int64(30 * s), int64(30 * s)})
		// Engine 0 takes everything for 10 s, then engine 1: even over the
		// run, but the first window has every request on one of two
		// engines, 2× its share.
		p := herd[s-1]
		if s <= 10 {
			herd = append(herd, []int64{p[0] + 60, p[1]})
		} else {
			herd = append(herd, []int64{p[0], p[1] + 60})
		}
	}
	if got := windowShare(even, 10); got != 1 {
		t.Fatalf("even: %v", got)
	}
	if got := windowShare(herd, 10); got != 2 {
		t.Fatalf("herded: %v", got)
	}
	if got := windowShare([][]int64{{0, 0}, {3, 1}}, 10); got != 0 {
		t.Fatalf("too few requests to judge: %v", got)
	}
}

// TestKVAwareSmoke runs a small multi-turn workload with an engine restart
// through the kvcache-aware policies and the oracle: every request must be
// answered, the router's index must have ingested the engines' events and
// resynchronised after the restart, later rounds must hit the cache, and the
// report must carry the index table and kvcache-aware's targets.
func TestKVAwareSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs simulated engines")
	}
	tok, err := tokenizer.New("")
	if err != nil {
		t.Fatal(err)
	}
	w := Workload{Name: "mt restart (smoke)", Kind: KindMultiTurn, Groups: 4, PerGroup: 4, SystemTokens: 300, HistoryTokens: 2000,
		QuestionTokens: 50, OutputTokens: 20, Rate: 8, ThinkTime: 0.3, Seed: 3, Restarts: []Restart{{At: 1, Engine: 1, Down: 0.5}}}
	o := QualityOptions{Engines: 3, Profile: "llama-3.1-8b-h100", TimeScale: 1, Log: logr.Discard(), Workloads: []Workload{w}}
	var rows []QualityRow
	for _, p := range []Policy{{PolicyKVAware, KVAwareAlone}, {PolicyKthena, config.Default}, {PolicyKthenaKV, KthenaInProcessKV}, {PolicyOracle, ""}} {
		row, _, err := runPolicy(context.Background(), o, tok, w, p, w.sessions())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d/%d ok, hit rate %.2f, per engine %v, index %+v", p.Name, row.OK, row.Requests, row.HitRate, row.PerEngineRequests, row.KVIndex)
		if row.OK != row.Requests {
			t.Fatalf("%s: %d/%d ok", p.Name, row.OK, row.Requests)
		}
		if row.HitRate < 0.5 {
			t.Errorf("%s: hit rate %.2f", p.Name, row.HitRate)
		}
		if k := row.KVIndex; p.Config != "" {
			if k == nil || k.Counters["stored"] == 0 || k.Batches == 0 || k.PeakEntries == 0 || k.LagP99 <= 0 {
				t.Fatalf("%s: index %+v", p.Name, k)
			}
			if k.Counters["resyncs"] == 0 && k.Counters["orphans"] == 0 {
				t.Errorf("%s: no sign of the restart in the index: %v", p.Name, k.Counters)
			}
		}
		rows = append(rows, row)
	}
	md := QualityMarkdown(rows, o)
	for _, want := range []string{"event lag p50 / p99 / max", "kvcache-aware: hit rate ≥ 97 % of oracle"} {
		if !strings.Contains(md, want) {
			t.Fatalf("report lacks %q:\n%s", want, md)
		}
	}
}

// The report's tables read back as the rows they were written from.
func TestParseQualityMarkdown(t *testing.T) {
	w := Workloads()[0]
	rows := []QualityRow{
		{Workload: w.Name, Policy: "random", Requests: 750, OK: 749, OutputTokPerSec: 2393, TTFTP50: 0.273, TTFTP90: 0.676, TTFTP99: 1.26,
			TPOTP50: 0.0294, TPOTP90: 0.0443, E2EP90: 9.52, HitRate: 0.242, PerEngineRequests: []int{188, 195, 178, 189}, MaxShare: 1.38, Preemptions: 3, LagP99: 4100 * time.Microsecond},
		{Workload: w.Name, Policy: PolicyKVAware, Requests: 750, OK: 750, OutputTokPerSec: 2400, PerEngineRequests: []int{1, 2, 3, 4},
			KVIndex: &KVIndexStats{Entries: 10, PeakEntries: 20, Counters: map[string]int64{"stored": 30}, Batches: 5}},
	}
	md := QualityMarkdown(rows, QualityOptions{Engines: 4, Workloads: []Workload{w}, Note: "Last run: now."})
	got, note, err := ParseQualityMarkdown(md)
	if err != nil {
		t.Fatal(err)
	}
	if note != "Last run: now." || len(got) != 2 {
		t.Fatalf("note %q, %d rows", note, len(got))
	}
	rows[1].KVIndex = nil // not read back
	for i := range rows {
		if fmt.Sprint(got[i]) != fmt.Sprint(rows[i]) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}
}
