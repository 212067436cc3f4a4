package runner

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/coldstart"
)

type countingWaker struct {
	calls  atomic.Int32
	server atomic.Pointer[string]
}

func (w *countingWaker) Wake(_ context.Context, s *networkingv1alpha1.ModelServer, _ int) error {
	w.calls.Add(1)
	k := s.Namespace + "/" + s.Name
	w.server.Store(&k)
	return nil
}

func withWaker(w coldstart.Waker) func(*Options) { return func(o *Options) { o.Waker = w } }

const noEndpoints = "kind: Endpoints\nendpoints: []\n"

// A ModelServer with no pod: requests from several clients are held, the
// wake is sent, and when a pod appears every request is answered by it.
func TestColdStartHoldsAndReleases(t *testing.T) {
	w := &countingWaker{}
	h := startWith(t, docs(server("s", "", ""), oneRoute, noEndpoints), "", withWaker(w))

	const n = 6
	var wg sync.WaitGroup
	results := make([]resp, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = h.chat("llama", nil) }()
	}
	eventually(t, "requests held", func() bool {
		return testutil.ToFloat64(h.r.Metrics.HeldRequests.WithLabelValues("default/s")) == n
	})
	eventually(t, "wake sent", func() bool { return w.calls.Load() >= 1 })
	if got := testutil.ToFloat64(h.r.Metrics.ServerInFlight.WithLabelValues("default/s")); got != n {
		t.Fatalf("in-flight gauge %v while %d requests are held", got, n)
	}
	if got := *w.server.Load(); got != "default/s" {
		t.Fatalf("woke %s", got)
	}
	e := newEngine(t, "e1")
	h.writeFile(h.epFile, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})))
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK || engineOf(r) != "e1" {
			t.Fatalf("request %d: %d from %q: %s", i, r.status, engineOf(r), r.body)
		}
	}
	m := h.r.Metrics
	if got := testutil.ToFloat64(m.HeldTotal.WithLabelValues("default/s", "released")); got != n {
		t.Fatalf("released %v", got)
	}
	if got := testutil.ToFloat64(m.ColdStarts.WithLabelValues("default/s")); got != 1 {
		t.Fatalf("cold starts %v", got)
	}
	if got := testutil.CollectAndCount(m.ColdStartDuration); got != 1 {
		t.Fatalf("cold start duration series %d", got)
	}
	eventually(t, "in-flight gauge back to 0 after the answers", func() bool {
		return testutil.ToFloat64(h.r.Metrics.ServerInFlight.WithLabelValues("default/s")) == 0
	})
	// Served now: no more holding or waking.
	calls := w.calls.Load()
	if r := h.chat("llama", nil); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if w.calls.Load() != calls {
		t.Fatal("woke a ModelServer that has a pod")
	}
}

// Over the bound: 429; past the deadline: 504; both say the model is
// starting. Without a waker nothing is held: 503 at once.
func TestColdStartLimits(t *testing.T) {
	cfg := "coldStart: {maxHeldRequests: 1, holdTimeout: 400ms, wakeInterval: 100ms}\n"
	h := startWith(t, docs(server("s", "", ""), oneRoute, noEndpoints), cfg, withWaker(&countingWaker{}))
	first := make(chan resp, 1)
	go func() { first <- h.chat("llama", nil) }()
	eventually(t, "first request held", func() bool {
		return testutil.ToFloat64(h.r.Metrics.HeldRequests.WithLabelValues("default/s")) == 1
	})
	r := h.chat("llama", nil)
	typ, _ := r.json["error"].(map[string]any)["type"].(string)
	if r.status != http.StatusTooManyRequests || typ != "model_starting" {
		t.Fatalf("second request: %d %s", r.status, r.body)
	}
	r = <-first
	typ, _ = r.json["error"].(map[string]any)["type"].(string)
	if r.status != http.StatusGatewayTimeout || typ != "model_starting" {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}

	plain := start(t, docs(server("s", "", ""), oneRoute, noEndpoints), "")
	begin := time.Now()
	if r := plain.chat("llama", nil); r.status != http.StatusServiceUnavailable || time.Since(begin) > 5*time.Second {
		t.Fatalf("without a waker: %d after %s: %s", r.status, time.Since(begin), r.body)
	}

	off := startWith(t, docs(server("s", "", ""), oneRoute, noEndpoints), "coldStart: {maxHeldRequests: 0}\n", withWaker(&countingWaker{}))
	if r := off.chat("llama", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("holding off: %d %s", r.status, r.body)
	}
}

// A disaggregated ModelServer is servable only with both roles: a request
// that finds only a decode pod is held until a prefill pod of its group
// is ready.
func TestColdStartPDWaitsForBothRoles(t *testing.T) {
	p, d := newEngine(t, "p1"), newEngine(t, "d1")
	srv, route := pdServer("s", "vLLM", "http", ""), pdRoute("llama", "s")
	h := startWith(t, docs(srv, route, pdEndpoints("s", pdPod{e: d, role: "decode", group: "g1"})), alwaysPD, withWaker(&countingWaker{}))
	done := make(chan resp, 1)
	go func() { done <- h.chat("llama", decide) }()
	eventually(t, "request held", func() bool {
		return testutil.ToFloat64(h.r.Metrics.HeldRequests.WithLabelValues("default/s")) == 1
	})
	h.writeFile(h.epFile, docs(srv, route, pdEndpoints("s", pdPod{e: d, role: "decode", group: "g1"}, pdPod{e: p, role: "prefill", group: "g1"})))
	r := <-done
	if r.status != http.StatusOK || engineOf(r) != "d1" {
		t.Fatalf("%d from %q: %s", r.status, engineOf(r), r.body)
	}
}

// A request whose only pod refuses connections (its process is gone while
// the pod still looks ready, as at the end of a scale-down to zero) is held
// until another pod is ready, not failed.
func TestColdStartAfterEveryPodFailed(t *testing.T) {
	e1 := newEngine(t, "e1")
	w := &countingWaker{}
	// One scrape at start only, so that nothing but the request finds e1 gone.
	h := startWith(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e1: "s"})), "",
		func(o *Options) { o.Waker = w; o.ScrapeInterval = time.Hour })
	e1.srv.Close()
	done := make(chan resp, 1)
	go func() { done <- h.chat("llama", nil) }()
	eventually(t, "request held after its pod refused it", func() bool {
		return testutil.ToFloat64(h.r.Metrics.HeldRequests.WithLabelValues("default/s")) == 1
	})
	e2 := newEngine(t, "e2")
	h.writeFile(h.epFile, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e2: "s"})))
	r := <-done
	if r.status != http.StatusOK || engineOf(r) != "e2" {
		t.Fatalf("%d from %q: %s", r.status, engineOf(r), r.body)
	}
	if w.calls.Load() == 0 {
		t.Fatal("no capacity asked for")
	}
	// A pod that answers with an error is a real failure: not held.
	e2.set(func(e *fakeEngine) { e.status = http.StatusInternalServerError })
	if r := h.chat("llama", nil); r.status != http.StatusBadGateway {
		t.Fatalf("engine error: %d %s", r.status, r.body)
	}
}

// Held requests reach the engines through real sockets oldest first and
// paced: a pod that turns ready gets coldStart.releasePerPod of them, the
// next one goes when an answer ends, a second pod gets its share at once,
// and every request is answered.
func TestColdStartPacedRelease(t *testing.T) {
	var mu sync.Mutex
	var arrived []string
	gate := make(chan struct{}, 16)
	engine := func(name string) *fakeEngine {
		e := newEngine(t, name)
		e.set(func(e *fakeEngine) {
			e.respond = func(w http.ResponseWriter, body map[string]any) bool {
				msgs, _ := body["messages"].([]any)
				m, _ := msgs[0].(map[string]any)
				c, _ := m["content"].(string)
				mu.Lock()
				arrived = append(arrived, c)
				mu.Unlock()
				<-gate
				return false
			}
		})
		return e
	}
	seen := func(want int) []string {
		t.Helper()
		eventually(t, fmt.Sprintf("%d requests at the engines", want), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(arrived) >= want
		})
		time.Sleep(150 * time.Millisecond) // room for a wrong extra release
		mu.Lock()
		defer mu.Unlock()
		got := slices.Clone(arrived)
		if len(got) != want {
			t.Fatalf("engines got %v, want %d requests", got, want)
		}
		slices.Sort(got)
		return got
	}

	h := startWith(t, docs(server("s", "", ""), oneRoute, noEndpoints), "coldStart: {releasePerPod: 2}\n", withWaker(&countingWaker{}))
	const n = 6
	results := make([]resp, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.do("/v1/chat/completions", fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":"r%d"}]}`, i), nil)
		}()
		eventually(t, "request held", func() bool {
			return testutil.ToFloat64(h.r.Metrics.HeldRequests.WithLabelValues("default/s")) == float64(i+1)
		})
	}
	e1 := engine("e1")
	h.writeFile(h.epFile, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e1: "s"})))
	if got := seen(2); !slices.Equal(got, []string{"r0", "r1"}) {
		t.Fatalf("first pod got %v, want the two oldest", got)
	}
	gate <- struct{}{} // one answer ends: the next oldest goes
	if got := seen(3); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
		t.Fatalf("after one answer: %v", got)
	}
	e2 := engine("e2")
	h.writeFile(h.epFile, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e1: "s", e2: "s"})))
	if got := seen(5); !slices.Equal(got, []string{"r0", "r1", "r2", "r3", "r4"}) {
		t.Fatalf("after a second pod: %v", got)
	}
	for range n {
		gate <- struct{}{}
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if got := testutil.ToFloat64(h.r.Metrics.HeldTotal.WithLabelValues("default/s", "released")); got != n {
		t.Fatalf("released %v", got)
	}
	// Nothing held any more: a request goes straight to a pod.
	if r := h.chat("llama", nil); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
