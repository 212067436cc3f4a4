package runner

import (
	"fmt"
	"strings"
	"testing"
)

func TestMatchKinds(t *testing.T) {
	a, b, c, d, e := newEngine(t, "a"), newEngine(t, "b"), newEngine(t, "c"), newEngine(t, "d"), newEngine(t, "e")
	route := `kind: ModelRoute
metadata: {name: r1}
spec:
  modelName: llama
  rules:
  - name: exact-header
    modelMatch: {headers: {user-type: {exact: premium}}}
    targetModels: [{modelServerName: sa}]
  - name: prefix-header
    modelMatch: {headers: {x-team: {prefix: "ml-"}}}
    targetModels: [{modelServerName: sb}]
  - name: regex-header
    modelMatch: {headers: {x-region: {regex: "^eu-[0-9]+$"}}}
    targetModels: [{modelServerName: sc}]
  - name: uri
    modelMatch: {uri: {prefix: /v1/completions}}
    targetModels: [{modelServerName: sd}]
  - name: body
    modelMatch: {body: {model: llama}}
    targetModels: [{modelServerName: se}]
`
	h := start(t, docs(server("sa", "", ""), server("sb", "", ""), server("sc", "", ""), server("sd", "", ""), server("se", "", ""), route,
		endpoints(map[*fakeEngine]string{a: "sa", b: "sb", c: "sc", d: "sd", e: "se"})), "")
	cases := []struct {
		name, path string
		hdr        map[string]string
		want       string
	}{
		{"exact", "/v1/chat/completions", map[string]string{"User-Type": "premium"}, "a"},
		{"exact mismatch falls through", "/v1/chat/completions", map[string]string{"User-Type": "premiumx"}, "e"},
		{"prefix", "/v1/chat/completions", map[string]string{"X-Team": "ml-infra"}, "b"},
		{"regex", "/v1/chat/completions", map[string]string{"X-Region": "eu-12"}, "c"},
		{"regex mismatch", "/v1/chat/completions", map[string]string{"X-Region": "us-1"}, "e"},
		{"uri", "/v1/completions", nil, "d"},
		{"first rule wins", "/v1/completions", map[string]string{"User-Type": "premium"}, "a"},
		{"body model", "/v1/chat/completions", nil, "e"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(tc.path, `{"model":"llama","prompt":"x","messages":[{"role":"user","content":"x"}]}`, tc.hdr)
			if r.status != 200 || engineOf(r) != tc.want {
				t.Fatalf("status %d engine %q, want %q (%s)", r.status, engineOf(r), tc.want, r.body)
			}
		})
	}
}

func TestWeightedTargets(t *testing.T) {
	a, b := newEngine(t, "a"), newEngine(t, "b")
	route := `kind: ModelRoute
metadata: {name: canary}
spec:
  modelName: llama
  rules:
  - targetModels: [{modelServerName: sa, weight: 80}, {modelServerName: sb, weight: 20}]
`
	h := start(t, docs(server("sa", "", ""), server("sb", "", ""), route, endpoints(map[*fakeEngine]string{a: "sa", b: "sb"})), "")
	const n = 1000
	for i := 0; i < n; i++ {
		if r := h.chat("llama", nil); r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	// Binomial(1000, 0.2): sd ≈ 12.6; accept ±5 sd.
	if got := b.served.Load(); got < 137 || got > 263 {
		t.Fatalf("canary got %d of %d, want ≈200", got, n)
	}
	if a.served.Load()+b.served.Load() != n {
		t.Fatalf("served %d+%d", a.served.Load(), b.served.Load())
	}
}

func TestDuplicateRouteOldestWins(t *testing.T) {
	a, b := newEngine(t, "a"), newEngine(t, "b")
	newer := `kind: ModelRoute
metadata: {name: newer, creationTimestamp: "2026-02-01T00:00:00Z"}
spec: {modelName: llama, rules: [{targetModels: [{modelServerName: sb}]}]}
`
	older := `kind: ModelRoute
metadata: {name: older, creationTimestamp: "2026-01-01T00:00:00Z"}
spec: {modelName: llama, rules: [{targetModels: [{modelServerName: sa}]}]}
`
	h := start(t, docs(server("sa", "", ""), server("sb", "", ""), newer, older, endpoints(map[*fakeEngine]string{a: "sa", b: "sb"})), "")
	for i := 0; i < 20; i++ {
		if r := h.chat("llama", nil); engineOf(r) != "a" {
			t.Fatalf("request %d went to %q, want the older route's server", i, engineOf(r))
		}
	}
}

func TestModelRewriteAndLoRA(t *testing.T) {
	a, b := newEngine(t, "a"), newEngine(t, "b")
	b.set(func(e *fakeEngine) { e.models = []string{"meta/llama-3", "sql-lora"} })
	a.set(func(e *fakeEngine) { e.models = []string{"meta/llama-3"} })
	route := `kind: ModelRoute
metadata: {name: r}
spec:
  modelName: llama
  loraAdapters: [sql-lora]
  rules: [{targetModels: [{modelServerName: s}]}]
`
	cfg := `scheduler:
  plugins:
    Filter: {enabled: [lora-affinity]}
    Score: {enabled: [{name: least-request, weight: 1}]}
`
	h := start(t, docs(server("s", "meta/llama-3", ""), route, endpoints(map[*fakeEngine]string{a: "s", b: "s"})), cfg)
	h.waitScraped(a, b)
	r := h.chat("llama", nil)
	if r.status != 200 || r.json["model"] != "meta/llama-3" {
		t.Fatalf("base request: status %d model %v, want rewritten to meta/llama-3", r.status, r.json["model"])
	}
	for i := 0; i < 10; i++ {
		r = h.chat("sql-lora", nil)
		if r.status != 200 || engineOf(r) != "b" || r.json["model"] != "sql-lora" {
			t.Fatalf("lora request: status %d engine %q model %v; want b with the adapter name kept", r.status, engineOf(r), r.json["model"])
		}
	}
	r = h.do("/v1/models", "", nil)
	_ = r
}

func TestModelsList(t *testing.T) {
	a := newEngine(t, "a")
	route := `kind: ModelRoute
metadata: {name: r}
spec: {modelName: llama, loraAdapters: [l1], rules: [{targetModels: [{modelServerName: s}]}]}
`
	h := start(t, docs(server("s", "", ""), route, endpoints(map[*fakeEngine]string{a: "s"})), "")
	res, err := h.client.Get("http://" + h.r.Addr() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var l struct {
		Data []struct{ ID, OwnedBy string }
	}
	buf := new(strings.Builder)
	_, _ = fmt.Fprint(buf)
	if err := jsonDecode(res.Body, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 2 || l.Data[0].ID != "l1" || l.Data[1].ID != "llama" {
		t.Fatalf("models %+v", l.Data)
	}
}
