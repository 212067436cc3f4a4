package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the benchmark's child processes.
func TestMain(m *testing.M) {
	switch os.Getenv("KTHENA_BENCH_CHILD") {
	case "router":
		if err := ServeRouterChild(os.Args[1:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case "engines":
		if err := ServeEngineChild(os.Args[1:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case "relay":
		if err := ServeRelayChild(os.Args[1:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRunOverheadSmoke(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KTHENA_BENCH_CHILD", "router")
	o := OverheadOptions{Engines: 2, Rate: 200, Duration: 800 * time.Millisecond, LargeBytes: 64 << 10, LargeConcurrency: 4,
		EngineTime: 20 * time.Millisecond, SearchRates: []float64{100}, RouterCommand: []string{self}, RouterProcs: 1,
		EngineCommand: []string{"env", "KTHENA_BENCH_CHILD=engines", self}}
	res, err := RunOverhead(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 4 {
		t.Fatalf("%d scenarios, want 4", len(res.Rows))
	}
	for _, r := range res.Rows {
		if r.RouterRPS <= 0 || r.DirectRPS <= 0 || r.RouterP50 <= 0 {
			t.Fatalf("scenario %q measured nothing: %+v", r.Scenario, r)
		}
	}
	if res.MaxRate != 100 {
		t.Fatalf("router did not sustain 100 req/s: %+v", res.Search)
	}
	md := Markdown(res, o)
	if !strings.Contains(md, "engine time 20ms") || !strings.Contains(md, "own child process") {
		t.Fatalf("report:\n%s", md)
	}
	wellFormed(t, RateSVG(res))
}

// The relay stands in for the router and relays every request.
func TestRelayInTheRoutersPlace(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := OverheadOptions{Engines: 2, Rate: 200, Duration: 400 * time.Millisecond, Only: "100 B prompt, non-streaming",
		RouterCommand: []string{"env", "KTHENA_BENCH_CHILD=relay", self}}
	res, err := RunOverhead(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0].RouterRPS < 150 {
		t.Fatalf("relay did not carry the load: %+v", res.Rows)
	}
}
