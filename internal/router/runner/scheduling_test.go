package runner

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func only(scorer string) string {
	return fmt.Sprintf("scheduler:\n  plugins:\n    Score: {enabled: [{name: %s, weight: 1}]}\n", scorer)
}

func threeEngines(t *testing.T, cfg string) (*harness, []*fakeEngine) {
	es := []*fakeEngine{newEngine(t, "a"), newEngine(t, "b"), newEngine(t, "c")}
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{es[0]: "s", es[1]: "s", es[2]: "s"})), cfg)
	return h, es
}

func TestPluginEffects(t *testing.T) {
	t.Run("prefix stickiness", func(t *testing.T) {
		h, _ := threeEngines(t, only("prefix-cache"))
		for g := 0; g < 3; g++ {
			body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"system","content":%q},{"role":"user","content":"q%%d"}]}`, strings.Repeat(fmt.Sprintf("group %d shared system prompt. ", g), 40))
			first := ""
			for i := 0; i < 10; i++ {
				r := h.do("/v1/chat/completions", fmt.Sprintf(body, i), nil)
				if first == "" {
					first = engineOf(r)
				} else if engineOf(r) != first {
					t.Fatalf("group %d request %d went to %s, first went to %s", g, i, engineOf(r), first)
				}
			}
		}
	})
	t.Run("saturated pod avoided", func(t *testing.T) {
		h, es := threeEngines(t, "scheduler:\n  plugins:\n    Filter: {enabled: [least-request]}\n    Score: {enabled: [{name: random}]}\n")
		es[0].set(func(e *fakeEngine) { e.waiting = 50 })
		es[1].set(func(e *fakeEngine) { e.waiting = 11 })
		h.waitScraped(es...)
		for i := 0; i < 20; i++ {
			if r := h.chat("llama", nil); engineOf(r) != "c" {
				t.Fatalf("request went to saturated %s", engineOf(r))
			}
		}
	})
	t.Run("lower KV usage preferred", func(t *testing.T) {
		h, es := threeEngines(t, only("gpu-usage"))
		es[0].set(func(e *fakeEngine) { e.kv = 0.9 })
		es[1].set(func(e *fakeEngine) { e.kv = 0.2 })
		es[2].set(func(e *fakeEngine) { e.kv = 0.5 })
		h.waitScraped(es...)
		for i := 0; i < 10; i++ {
			if r := h.chat("llama", nil); engineOf(r) != "b" {
				t.Fatalf("request went to %s, want b (lowest KV usage)", engineOf(r))
			}
		}
	})
	t.Run("faster pod preferred", func(t *testing.T) {
		h, es := threeEngines(t, only("least-latency"))
		es[0].set(func(e *fakeEngine) { e.ttft = 0.5 })
		es[1].set(func(e *fakeEngine) { e.ttft = 0.3 })
		es[2].set(func(e *fakeEngine) { e.ttft = 0.05 })
		h.waitScraped(es...)
		for i := 0; i < 10; i++ {
			if r := h.chat("llama", nil); engineOf(r) != "c" {
				t.Fatalf("request went to %s, want c (fastest)", engineOf(r))
			}
		}
	})
}

func TestDecisionHeader(t *testing.T) {
	h, es := threeEngines(t, "scheduler:\n  plugins:\n    Score: {enabled: [{name: gpu-usage, weight: 2}, {name: least-request, weight: 1}]}\n")
	es[1].set(func(e *fakeEngine) { e.kv = 0.5 })
	h.waitScraped(es...)
	r := h.chat("llama", map[string]string{"X-Kthena-Decision": "1"})
	var d struct {
		Scorers []struct {
			Name   string
			Weight float64
		}
		Chosen     string
		Candidates []struct {
			Pod    string
			Total  float64
			Scores map[string]float64
		}
	}
	if err := json.Unmarshal([]byte(r.header.Get("X-Kthena-Decision")), &d); err != nil {
		t.Fatalf("decision header %q: %v", r.header.Get("X-Kthena-Decision"), err)
	}
	if len(d.Scorers) != 2 || d.Scorers[0].Name != "gpu-usage" || d.Scorers[0].Weight != 2 || len(d.Candidates) != 3 {
		t.Fatalf("decision %+v", d)
	}
	if d.Chosen != "default/"+engineOf(r) || d.Candidates[0].Pod != d.Chosen {
		t.Fatalf("chosen %q, served by %q, first candidate %q", d.Chosen, engineOf(r), d.Candidates[0].Pod)
	}
	for _, c := range d.Candidates {
		want := 1.0
		if c.Pod == "default/b" {
			want = 0.5
		}
		if c.Scores["gpu-usage"] != want || c.Total != 2*want+c.Scores["least-request"] {
			t.Fatalf("candidate %+v", c)
		}
	}
	if r := h.chat("llama", nil); r.header.Get("X-Kthena-Decision") != "" {
		t.Fatal("decision header sent without being asked for")
	}
}

func TestConfigHotReload(t *testing.T) {
	h, _ := threeEngines(t, only("least-request"))
	scorers := func() string {
		r := h.chat("llama", map[string]string{"X-Kthena-Decision": "1"})
		return r.header.Get("X-Kthena-Decision")
	}
	if s := scorers(); !strings.Contains(s, `"name":"least-request"`) {
		t.Fatalf("initial decision %s", s)
	}
	h.writeFile(h.cfg, only("gpu-usage"))
	eventually(t, "config reload", func() bool { return strings.Contains(scorers(), `"name":"gpu-usage"`) })
	// An invalid configuration is refused and the running one stays.
	h.writeFile(h.cfg, only("no-such-plugin"))
	eventually(t, "failed reload counted", func() bool {
		mfs, _ := h.r.Registry.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "kthena_router_config_reloads_total" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == "error" && m.GetCounter().GetValue() >= 1 {
						return true
					}
				}
			}
		}
		return false
	})
	if s := scorers(); !strings.Contains(s, `"name":"gpu-usage"`) {
		t.Fatalf("bad config replaced the running one: %s", s)
	}
}

func TestEndpointsFileLiveReload(t *testing.T) {
	a, b := newEngine(t, "a"), newEngine(t, "b")
	base := docs(server("s", "", ""), oneRoute)
	h := start(t, docs(base, endpoints(map[*fakeEngine]string{a: "s"})), only("round-robin"))
	if r := h.chat("llama", nil); engineOf(r) != "a" {
		t.Fatalf("served by %q", engineOf(r))
	}
	h.writeFile(h.epFile, docs(base, endpoints(map[*fakeEngine]string{a: "s", b: "s"})))
	eventually(t, "new endpoint used", func() bool { return engineOf(h.chat("llama", nil)) == "b" })
	h.writeFile(h.epFile, docs(base, endpoints(map[*fakeEngine]string{b: "s"})))
	eventually(t, "removed endpoint dropped", func() bool {
		for i := 0; i < 4; i++ {
			if engineOf(h.chat("llama", nil)) != "b" {
				return false
			}
		}
		return true
	})
	// An invalid file keeps the last good content.
	h.writeFile(h.epFile, "kind: Bogus\n")
	if r := h.chat("llama", nil); r.status != 200 {
		t.Fatalf("after invalid edit: %d", r.status)
	}
}
