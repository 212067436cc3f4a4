package bench

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestWorkloadRequests(t *testing.T) {
	w := Workload{Groups: 4, PerGroup: 3, SystemTokens: 50, QuestionTokens: 10, OutputTokens: 20, Rate: 100, Seed: 9}
	reqs := w.Requests()
	if len(reqs) != 12 {
		t.Fatalf("%d requests, want 12", len(reqs))
	}
	bySystem := map[string]int{}
	prev := 0.0
	for _, r := range reqs {
		bySystem[r.system]++
		if r.at <= prev {
			t.Fatalf("arrivals not increasing: %v after %v", r.at, prev)
		}
		prev = r.at
		if r.maxTokens < 14 || r.maxTokens > 26 {
			t.Fatalf("output %d outside ±30 %% of 20", r.maxTokens)
		}
	}
	if len(bySystem) != 4 {
		t.Fatalf("%d distinct system prompts, want 4", len(bySystem))
	}
	for s, n := range bySystem {
		if n != 3 || len(strings.Fields(s)) < 50 {
			t.Fatalf("group with %d requests and %d words", n, len(strings.Fields(s)))
		}
	}
	if again := w.Requests(); again[5].q != reqs[5].q {
		t.Fatal("workload is not deterministic")
	}
}

func wellFormed(t *testing.T, doc string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

func TestSVGs(t *testing.T) {
	rows := []QualityRow{{Workload: "a (x)", Policy: "p & q", TTFTP90: 1, HitRate: .5}, {Workload: "b", Policy: "p & q", TTFTP90: 2}}
	q := QualitySVG(rows)
	wellFormed(t, q)
	if !strings.Contains(q, "p &amp; q") {
		t.Fatal("legend missing or not escaped")
	}
	r := RateSVG(&OverheadResult{Search: []RatePoint{{Offered: 1000, P50: time.Millisecond, P99: 3 * time.Millisecond}, {Offered: 2000, P50: 2 * time.Millisecond, P99: 5 * time.Millisecond}}})
	wellFormed(t, r)
	if strings.Count(r, "<circle") != 4 {
		t.Fatal("want 4 points")
	}
}
