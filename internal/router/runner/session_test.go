package runner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kthena/kthena/internal/testing/realserver"
)

const sticky = "\n  trafficPolicy: {sessionSticky: {sources: [{type: Header, name: X-Session-Id}, {type: Cookie, name: sid}]}}"

func sessionHeader(id string) map[string]string {
	return map[string]string{"X-Session-Id": id, "X-Kthena-Decision": "1"}
}

// A session stays on its pod while the pod is a candidate, moves when the
// pod leaves or is saturated, and sticks to the new pod afterwards.
func TestSessionAffinityAggregated(t *testing.T) {
	a, b, c := newEngine(t, "a"), newEngine(t, "b"), newEngine(t, "c")
	all := map[*fakeEngine]string{a: "s", b: "s", c: "s"}
	h := start(t, docs(server("s", "", sticky), oneRoute, endpoints(all)), "")
	bound := map[string]string{}
	for round := 0; round < 5; round++ {
		for i := 0; i < 12; i++ {
			id := fmt.Sprintf("session-%d", i)
			r := h.chat("llama", sessionHeader(id))
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if round == 0 {
				bound[id] = engineOf(r)
			} else if engineOf(r) != bound[id] {
				t.Fatalf("round %d: %s moved from %s to %s", round, id, bound[id], engineOf(r))
			}
		}
	}
	used := map[string]bool{}
	for _, e := range bound {
		used[e] = true
	}
	if len(used) < 2 {
		t.Fatalf("12 sessions all bound to %v", used)
	}
	if v := testutil.ToFloat64(h.r.Metrics.SessionAffinity.WithLabelValues("bound")); v != 48 {
		t.Fatalf("bound %v, want 48", v)
	}
	// A request without a key is scheduled normally; a cookie is a key too.
	if r := h.chat("llama", nil); r.status != 200 || strings.Contains(r.header.Get("X-Kthena-Decision"), "session") {
		t.Fatalf("keyless request: %d %s", r.status, r.header.Get("X-Kthena-Decision"))
	}
	r1 := h.do("/v1/chat/completions", `{"model":"llama"}`, map[string]string{"Cookie": "sid=abc"})
	for i := 0; i < 5; i++ {
		if r := h.do("/v1/chat/completions", `{"model":"llama"}`, map[string]string{"Cookie": "sid=abc"}); engineOf(r) != engineOf(r1) {
			t.Fatal("cookie session moved")
		}
	}

	// The pod of session-0 leaves: the session moves, then sticks.
	gone := bound["session-0"]
	rest := map[*fakeEngine]string{}
	for e, app := range all {
		if e.name != gone {
			rest[e] = app
		}
	}
	h.writeFile(h.epFile, docs(server("s", "", sticky), oneRoute, endpoints(rest)))
	var moved string
	eventually(t, "pod removed", func() bool {
		r := h.chat("llama", sessionHeader("session-0"))
		moved = engineOf(r)
		return r.status == 200 && moved != gone
	})
	for i := 0; i < 5; i++ {
		r := h.chat("llama", sessionHeader("session-0"))
		if engineOf(r) != moved || !strings.Contains(r.header.Get("X-Kthena-Decision"), `"session":"bound"`) {
			t.Fatalf("after moving to %s: %s, decision %s", moved, engineOf(r), r.header.Get("X-Kthena-Decision"))
		}
	}
	if testutil.ToFloat64(h.r.Metrics.SessionAffinity.WithLabelValues("lost")) < 1 {
		t.Fatal("no lost binding counted")
	}

	// Its new pod saturates (a long queue: the queue filter drops it): the
	// session moves again rather than wait.
	for e := range rest {
		if e.name == moved {
			e.set(func(e *fakeEngine) { e.waiting = 100 })
			h.waitScraped(e)
		}
	}
	r := h.chat("llama", sessionHeader("session-0"))
	if engineOf(r) == moved || !strings.Contains(r.header.Get("X-Kthena-Decision"), `"session":"saturated"`) {
		t.Fatalf("saturated pod kept the session: %s, decision %s", engineOf(r), r.header.Get("X-Kthena-Decision"))
	}
}

// On a PD ModelServer the session keeps its decode pod, and the decider
// sees that pod's cache.
func TestSessionAffinityPD(t *testing.T) {
	var pods []pdPod
	for g := 1; g <= 2; g++ {
		pods = append(pods, pdPod{e: newEngine(t, fmt.Sprintf("p%d", g)), role: "prefill", group: fmt.Sprintf("g%d", g)})
		for k := 0; k < 2; k++ {
			pods = append(pods, pdPod{e: newEngine(t, fmt.Sprintf("d%d%d", g, k)), role: "decode", group: fmt.Sprintf("g%d", g)})
		}
	}
	h := start(t, docs(pdServer("s", "vLLM", "http", sticky), pdRoute("llama", "s"), pdEndpoints("s", pods...)), alwaysPD)
	for i := 0; i < 8; i++ {
		id := fmt.Sprintf("conv-%d", i)
		first := ""
		for k := 0; k < 4; k++ {
			r := h.chat("llama", sessionHeader(id))
			d := decisionOf(t, r)
			if r.status != 200 || d.Pair.Prefill == "" {
				t.Fatalf("status %d, pair %+v", r.status, d.Pair)
			}
			if k == 0 {
				first = d.Pair.Decode
			} else if d.Pair.Decode != first {
				t.Fatalf("%s: decode moved from %s to %s", id, first, d.Pair.Decode)
			}
		}
	}
}

// The Redis store shares bindings between router replicas.
func TestSessionAffinityRedisShared(t *testing.T) {
	addr := realserver.Redis(t)
	cfg := alwaysPD + "sessionSticky: {store: redis, redis: {address: \"" + addr + "\"}}\n"
	a, b, c := newEngine(t, "a"), newEngine(t, "b"), newEngine(t, "c")
	file := docs(server("s", "", sticky), oneRoute, endpoints(map[*fakeEngine]string{a: "s", b: "s", c: "s"}))
	h1, h2 := start(t, file, cfg), start(t, file, cfg)
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("shared-%d", i)
		want := engineOf(h1.chat("llama", sessionHeader(id)))
		for k := 0; k < 3; k++ {
			if got := engineOf(h2.chat("llama", sessionHeader(id))); got != want {
				t.Fatalf("%s: replica 2 sent it to %s, replica 1 bound it to %s", id, got, want)
			}
		}
	}
}
