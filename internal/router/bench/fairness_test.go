package bench

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"
)

func TestJain(t *testing.T) {
	for _, c := range []struct {
		x    []float64
		want float64
	}{
		{[]float64{5, 5, 5, 5}, 1},
		{[]float64{1, 0, 0, 0}, 0.25},
		{[]float64{1, 1, 4, 10}, 256.0 / 472},
		{nil, 1},
		{[]float64{0, 0}, 1},
	} {
		if got := jain(c.x); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("jain(%v) = %v, want %v", c.x, got, c.want)
		}
	}
}

func TestWindowSums(t *testing.T) {
	s := time.Second
	ev := []served{
		{"a", 1 * s, 10}, {"b", 2 * s, 5}, // before start: dropped
		{"a", 10 * s, 1}, {"a", 19 * s, 2}, {"b", 15 * s, 3},
		{"b", 20 * s, 4}, {"c", 25 * s, 100}, // c is not a tenant of the report
		{"a", 30 * s, 7}, // the window [30 s, 40 s) does not fit before end
	}
	got := windowSums(ev, []string{"a", "b"}, map[string]float64{"b": 2}, 10*s, 35*s, 10*s)
	want := [][]float64{{3, 1.5}, {0, 2}}
	if len(got) != len(want) {
		t.Fatalf("got %v windows, want %v", got, want)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("window sums %v, want %v", got, want)
			}
		}
	}
	per, mean, low := windowJain(got)
	if len(per) != 2 || math.Abs(per[1]-0.5) > 1e-9 || low != per[1] || math.Abs(mean-(per[0]+per[1])/2) > 1e-9 {
		t.Fatalf("windowJain = %v %v %v", per, mean, low)
	}
	if windowSums(ev, []string{"a"}, nil, 0, 5*s, 10*s) != nil {
		t.Fatal("a span shorter than a window has no windows")
	}
}

// The upstream order: one user's requests FIFO; between users the lower
// priority (fixed when queued), then arrival.
func TestUpstreamLess(t *testing.T) {
	a1 := &upWaiter{user: "a", priority: 100, seq: 1}
	a2 := &upWaiter{user: "a", priority: 50, seq: 2} // same user: arrival wins over priority
	b := &upWaiter{user: "b", priority: 60, seq: 3}
	c := &upWaiter{user: "c", priority: 60, seq: 4}
	for _, tc := range []struct {
		x, y *upWaiter
		want bool
	}{{a1, a2, true}, {a2, a1, false}, {b, a1, true}, {a1, b, false}, {b, c, true}, {c, b, false}} {
		if got := upstreamLess(tc.x, tc.y); got != tc.want {
			t.Errorf("less(%+v, %+v) = %v", tc.x, tc.y, got)
		}
	}
}

// The gate admits up to MaxConcurrent, then by the users' windowed
// tokens at queueing time; tokens older than the window no longer count.
func TestUpstreamGate(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g := newUpstreamGate(upstreamSettings{MaxConcurrent: 1, Window: time.Minute, InputWeight: 1, OutputWeight: 2, TokenWeight: 1, Timeout: time.Minute}, clock)
	ctx := context.Background()
	if w, err := g.Acquire(ctx, "heavy"); err != nil || w != 0 {
		t.Fatalf("free slot: %v %v", w, err)
	}
	g.Release("heavy", 100, 100) // heavy: 300 tokens
	if _, err := g.Acquire(ctx, "light"); err != nil {
		t.Fatal(err)
	}
	g.Release("light", 10, 0) // light: 10 tokens
	if _, err := g.Acquire(ctx, "heavy"); err != nil {
		t.Fatal(err)
	}
	// The slot is taken: heavy then light queue; light goes first.
	order := make(chan string, 2)
	var wg sync.WaitGroup
	for _, u := range []string{"heavy", "light"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := g.Acquire(ctx, u); err != nil {
				t.Error(err)
				return
			}
			order <- u
			g.Release(u, 0, 0)
		}()
		for g.Waiting() == 0 || (u == "light" && g.Waiting() < 2) {
			time.Sleep(time.Millisecond)
		}
	}
	g.Release("heavy", 0, 0)
	wg.Wait()
	if first := <-order; first != "light" {
		t.Fatalf("first admitted %s, want light (fewer windowed tokens)", first)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	g.mu.Lock()
	p := g.priority("heavy", clock())
	g.mu.Unlock()
	if p != 0 {
		t.Fatalf("priority after the window: %v, want 0", p)
	}
}

func TestUpstreamGateTimeout(t *testing.T) {
	g := newUpstreamGate(upstreamSettings{MaxConcurrent: 1, Window: time.Minute, Timeout: 20 * time.Millisecond}, nil)
	ctx := context.Background()
	if _, err := g.Acquire(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Acquire(ctx, "b"); err != errUpstreamTimeout {
		t.Fatalf("got %v, want the timeout", err)
	}
	if g.Waiting() != 0 {
		t.Fatal("a timed-out request stays queued")
	}
}

func TestOtherCell(t *testing.T) {
	if got := otherCell(TenantStats{}); got != "0" {
		t.Fatalf("no failures: %q", got)
	}
	if got := otherCell(TenantStats{Other: 3, OtherCodes: map[int]int{503: 1, 502: 2}}); got != "3 (2× 502, 1× 503)" {
		t.Fatalf("got %q", got)
	}
}
