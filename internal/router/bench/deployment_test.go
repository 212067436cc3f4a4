package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/router/accesslog"
)

// The stage timings the router writes are the ones the bench reads back,
// and a request's stages add up to its latency.
func TestStagesRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := accesslog.New(f, "text")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	us := time.Microsecond
	st := accesslog.Stages{BodyRead: 10 * us, Parsed: 20 * us, Routed: 30 * us, Scheduled: 40 * us, UpstreamStart: 50 * us,
		Sent: 60 * us, ResponseStart: 200 * us, End: 210 * us}
	l.Log(&accesslog.Entry{Timestamp: start, Method: "POST", Path: "/v1/chat/completions", Protocol: "HTTP/1.1", StatusCode: 200,
		RequestID: "a1", Stages: &st})
	l.Log(&accesslog.Entry{Timestamp: start, Method: "POST", Path: "/v1/chat/completions", Protocol: "HTTP/1.1", StatusCode: 200, RequestID: "nostages"})
	if c, ok := any(l).(interface{ Close() error }); ok {
		_ = c.Close()
	}
	_ = f.Close()
	entries, err := readStages(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries["a1"].stages[6] != 200*us || !entries["a1"].start.Equal(start) {
		t.Fatalf("read back %+v", entries)
	}
	s := sample{id: "a1", intended: start.Add(-100 * us), sent: start.Add(-80 * us), received: start.Add(300 * us), ok: true}
	shares, n := breakdown([]sample{s}, entries)
	if n != 1 {
		t.Fatalf("%d samples found", n)
	}
	var sum time.Duration
	for _, sh := range shares {
		sum += sh.Mean
	}
	if sum != s.latency() || shares[0].Mean != 20*us || shares[7].Mean != 140*us || shares[9].Mean != 90*us {
		t.Fatalf("stages %+v add up to %s, latency %s", shares, sum, s.latency())
	}
}

// The deployment mode end to end at a small scale: a real API server, the
// router child in Kubernetes mode next to a baseline, every scenario
// measured and the tail found in the access log.
func TestRunDeploymentSmoke(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	router := []string{"env", "KTHENA_BENCH_CHILD=router", self}
	o := DeploymentOptions{Engines: 2, Rate: 200, Duration: 600 * time.Millisecond, Rounds: 1, SmallClients: 2, StreamClients: 2,
		StreamChunks: 8, LargeBytes: 16 << 10, LargeClients: 2, EngineTime: 5 * time.Millisecond,
		RouterCommand: router, BaselineCommand: router, EngineCommand: []string{"env", "KTHENA_BENCH_CHILD=engines", self}}
	res, err := RunDeployment(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 5 {
		t.Fatalf("%d scenarios, want 5", len(res.Rows))
	}
	for _, row := range res.Rows {
		if len(row.Variants) != 3 {
			t.Fatalf("%s: %d variants", row.Scenario, len(row.Variants))
		}
		for _, v := range row.Variants {
			if v.Requests == 0 || v.Errors > 0 || v.P50 <= 0 {
				t.Fatalf("%s, %s: %+v", row.Scenario, v.Name, v)
			}
			if v.Name != "direct" && (v.CPU <= 0 || v.Logged == 0) {
				t.Fatalf("%s, %s: no router CPU or no tail sample in the access log: %+v", row.Scenario, v.Name, v)
			}
		}
	}
	md := DeploymentMarkdown(res, o)
	if !strings.Contains(md, "| baseline tail |") || !strings.Contains(md, "engine time 5ms") {
		t.Fatalf("report:\n%s", md)
	}
}
