package runner

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kthena/kthena/internal/router/config"
)

// With the fair queue on and one slot per pod, requests wait in the router
// and go to the engine by tenant order: a tenant that was served goes
// after one that was not, priority goes first, a full queue answers 429.
func TestFairQueue(t *testing.T) {
	e := newEngine(t, "e1")
	arrivals, release := make(chan string, 20), make(chan struct{})
	e.set(func(e *fakeEngine) {
		e.respond = func(_ http.ResponseWriter, body map[string]any) bool {
			msgs, _ := body["messages"].([]any)
			m, _ := msgs[0].(map[string]any)
			arrivals <- fmt.Sprint(m["content"])
			<-release
			return false
		}
	})
	cfg := config.Default + "auth: {tenantHeader: X-Tenant}\nfairness: {enabled: true, maxInFlightPerPod: 1, maxQueued: 6}\n"
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), cfg)
	send := func(tenant, content string, prio int) chan resp {
		out := make(chan resp, 1)
		hdr := map[string]string{"X-Tenant": tenant}
		if prio != 0 {
			hdr["X-Kthena-Priority"] = fmt.Sprint(prio)
		}
		go func() {
			out <- h.do("/v1/chat/completions", fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}]}`, content), hdr)
		}()
		return out
	}
	queued := func(n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d queued", n), func() bool {
			return testutil.ToFloat64(h.r.Metrics.FairnessQueued.WithLabelValues("default/s")) == float64(n)
		})
	}
	var answers []chan resp
	answers = append(answers, send("a", "a0", 0))
	if got := <-arrivals; got != "a0" {
		t.Fatalf("first at the engine: %s", got)
	}
	for i := 1; i <= 3; i++ {
		answers = append(answers, send("a", fmt.Sprintf("a%d", i), 0))
		queued(i)
	}
	answers = append(answers, send("b", "b0", 0))
	queued(4)
	answers = append(answers, send("c", "urgent", 9))
	queued(5)
	answers = append(answers, send("d", "d0", 0))
	queued(6)
	if r := <-send("e", "e0", 0); r.status != http.StatusTooManyRequests || errType(r) != "queue_full" {
		t.Fatalf("over the queue: %d %s", r.status, r.body)
	}
	var order []string
	for range 6 {
		release <- struct{}{}
		select {
		case got := <-arrivals:
			order = append(order, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("no request reached the engine after a release; order so far %v", order)
		}
	}
	release <- struct{}{}
	want := []string{"urgent", "b0", "d0", "a1", "a2", "a3"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("engine order %v, want %v (priority first, then tenants not yet served, then a's queue)", order, want)
		}
	}
	for i, c := range answers {
		if r := <-c; r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if got := testutil.ToFloat64(h.r.Metrics.FairnessRequests.WithLabelValues("default/s", "admitted")); got != 7 {
		t.Fatalf("admitted %v", got)
	}
}
