package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kthena/kthena/internal/router/config"
)

// pdServer declares a PD ModelServer over pods labelled app=<name>, role
// prefill|decode and group <g>.
func pdServer(name, engine, connector, extra string) string {
	kv := ""
	if connector != "" {
		kv = "\n  kvConnector: {type: " + connector + "}"
	}
	return fmt.Sprintf(`apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: %s, namespace: default}
spec:
  inferenceEngine: %s
  workloadSelector:
    matchLabels: {app: %s}
    pdGroup: {groupKey: group, prefillLabels: {role: prefill}, decodeLabels: {role: decode}}
  workloadPort: {port: 8000}%s%s
`, name, engine, name, kv, extra)
}

func pdRoute(model, server string) string {
	return fmt.Sprintf(`apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: %s, namespace: default}
spec:
  modelName: %s
  rules: [{name: r, targetModels: [{modelServerName: %s}]}]
`, model, model, server)
}

// pdPod is a fake engine in the role and group of a PD server.
type pdPod struct {
	e           *fakeEngine
	role, group string
	extra       string // more labels, "k: v"
}

func pdEndpoints(app string, pods ...pdPod) string {
	var b strings.Builder
	b.WriteString("kind: Endpoints\nendpoints:\n")
	for _, p := range pods {
		extra := ""
		if p.extra != "" {
			extra = ", " + p.extra
		}
		fmt.Fprintf(&b, "- {name: %s, address: %q, labels: {app: %s, role: %s, group: %s%s}}\n", p.e.name, p.e.addr(), app, p.role, p.group, extra)
	}
	return b.String()
}

// withTransferParams makes a fake prefill engine answer as vLLM's
// NixlConnector does: the response carries kv_transfer_params.
func withTransferParams(e *fakeEngine) {
	e.set(func(e *fakeEngine) {
		e.respond = func(w http.ResponseWriter, body map[string]any) bool {
			if _, ok := body["kv_transfer_params"]; !ok {
				return false
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"p","choices":[{"index":0,"message":{"role":"assistant","content":"x"}}],"usage":{"prompt_tokens":7,"completion_tokens":1,"total_tokens":8},"kv_transfer_params":{"do_remote_prefill":true,"do_remote_decode":false,"remote_engine_id":%q,"remote_block_ids":[1,2],"remote_host":"10.0.0.1","remote_port":5600}}`, e.name)
			return true
		}
	})
}

type pdDecisionHeader struct {
	Mode      string `json:"mode"`
	Connector string `json:"connector"`
	Pair      struct {
		Prefill, Decode, Group string
	} `json:"pair"`
	Decider *struct {
		SkipPrefill  bool `json:"skipPrefill"`
		PromptTokens int  `json:"promptTokens"`
		CachedTokens int  `json:"cachedTokens"`
	} `json:"decider"`
}

func decisionOf(t *testing.T, r resp) pdDecisionHeader {
	t.Helper()
	var d pdDecisionHeader
	if err := json.Unmarshal([]byte(r.header.Get("X-Kthena-Decision")), &d); err != nil {
		t.Fatalf("decision header %q: %v", r.header.Get("X-Kthena-Decision"), err)
	}
	return d
}

var decide = map[string]string{"X-Kthena-Decision": "1"}

// alwaysPD is the default configuration without the decider: every
// request of a PD server is disaggregated.
var alwaysPD = strings.Replace(config.Default, config.DefaultPDDecider, "", 1)

// Each connector shapes both phases as upstream does, for streaming and
// non-streaming requests, and the client gets the decode pod's answer.
func TestPDConnectorWire(t *testing.T) {
	for _, conn := range []string{"", "http", "lmcache", "nixl", "mooncake"} {
		t.Run("connector="+conn, func(t *testing.T) {
			p, d := newEngine(t, "p1"), newEngine(t, "d1")
			withTransferParams(p)
			h := start(t, docs(pdServer("s", "vLLM", conn, ""), pdRoute("llama", "s"),
				pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"}, pdPod{e: d, role: "decode", group: "g1"})), alwaysPD)
			params := conn == "nixl" || conn == "mooncake"

			r := h.do("/v1/chat/completions", `{"model":"llama","max_completion_tokens":64,"max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, decide)
			if r.status != 200 || engineOf(r) != "d1" {
				t.Fatalf("status %d from %q: %s", r.status, engineOf(r), r.body)
			}
			dec := decisionOf(t, r)
			wantConn := conn
			if conn == "" {
				wantConn = "http"
			}
			if dec.Mode != "pd" || dec.Connector != wantConn || dec.Pair.Prefill != "default/p1" || dec.Pair.Decode != "default/d1" || dec.Pair.Group != "g1" {
				t.Fatalf("decision %+v", dec)
			}
			pb, db := p.lastBody(), d.lastBody()
			if pb["max_tokens"] != 1.0 || pb["max_completion_tokens"] != 1.0 {
				t.Fatalf("prefill body %v: want max_tokens=1 and max_completion_tokens=1", pb)
			}
			if db["max_tokens"] != 64.0 || db["max_completion_tokens"] != 64.0 {
				t.Fatalf("decode body %v: want the client's max tokens", db)
			}
			kv, hasKV := pb["kv_transfer_params"].(map[string]any)
			if params != hasKV || (params && (kv["do_remote_decode"] != true || kv["do_remote_prefill"] != false)) {
				t.Fatalf("prefill kv_transfer_params %v (connector %q)", pb["kv_transfer_params"], conn)
			}
			dkv, hasDKV := db["kv_transfer_params"].(map[string]any)
			if params != hasDKV || (params && (dkv["remote_engine_id"] != "p1" || dkv["do_remote_prefill"] != true)) {
				t.Fatalf("decode kv_transfer_params %v, want the prefill response's", db["kv_transfer_params"])
			}

			lines := readSSE(t, h, `{"model":"llama","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
			if len(lines) != 4 || !strings.Contains(lines[0], "d1-0") || lines[3] != "data: [DONE]" {
				t.Fatalf("stream %q", lines)
			}
			pb, db = p.lastBody(), d.lastBody()
			if _, ok := pb["stream"]; ok {
				t.Fatalf("prefill body streams: %v", pb)
			}
			if _, ok := pb["stream_options"]; ok {
				t.Fatalf("prefill body has stream_options: %v", pb)
			}
			if so, _ := db["stream_options"].(map[string]any); db["stream"] != true || so["include_usage"] != true {
				t.Fatalf("decode body %v: want the stream with usage asked for", db)
			}
			// Usage is counted once, from the decode response.
			if v := testutil.ToFloat64(h.r.Metrics.Tokens.WithLabelValues("llama", "output")); v != 6 {
				t.Fatalf("output tokens %v, want 6 (3 per request, decode only)", v)
			}
			if v := testutil.ToFloat64(h.r.Metrics.PDRequests.WithLabelValues("llama", "disaggregated")); v != 2 {
				t.Fatalf("pd requests %v", v)
			}
			if n := testutil.CollectAndCount(h.r.Metrics.PrefillDuration); n != 1 {
				t.Fatalf("prefill histogram series %d", n)
			}
		})
	}
}

// Pairs never cross groups, whatever the load.
func TestPDPairsStayInGroup(t *testing.T) {
	var pods []pdPod
	groupOf := map[string]string{}
	for g := 1; g <= 3; g++ {
		for _, role := range []string{"prefill", "decode", "decode"} {
			name := fmt.Sprintf("%s%d-%d", role[:1], g, len(pods))
			pods = append(pods, pdPod{e: newEngine(t, name), role: role, group: fmt.Sprintf("g%d", g)})
			groupOf["default/"+name] = fmt.Sprintf("g%d", g)
		}
	}
	h := start(t, docs(pdServer("s", "vLLM", "http", ""), pdRoute("llama", "s"), pdEndpoints("s", pods...)), alwaysPD)
	seen := map[string]bool{}
	for i := 0; i < 60; i++ {
		r := h.do("/v1/chat/completions", fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":"q%d"}]}`, i), decide)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		d := decisionOf(t, r)
		if groupOf[d.Pair.Prefill] != d.Pair.Group || groupOf[d.Pair.Decode] != d.Pair.Group {
			t.Fatalf("pair crosses groups: %+v", d.Pair)
		}
		seen[d.Pair.Group] = true
	}
	if len(seen) != 3 {
		t.Fatalf("groups used: %v", seen)
	}
}

// A decode pod failing before the first byte moves the request to the next
// pair; a failing prefill pod moves it to its group's next prefill pod.
func TestPDFailover(t *testing.T) {
	p1, p1b, d1 := newEngine(t, "p1"), newEngine(t, "p1b"), newEngine(t, "d1")
	p2, d2 := newEngine(t, "p2"), newEngine(t, "d2")
	h := start(t, docs(pdServer("s", "vLLM", "http", ""), pdRoute("llama", "s"), pdEndpoints("s",
		pdPod{e: p1, role: "prefill", group: "g1"}, pdPod{e: p1b, role: "prefill", group: "g1"}, pdPod{e: d1, role: "decode", group: "g1"},
		pdPod{e: p2, role: "prefill", group: "g2"}, pdPod{e: d2, role: "decode", group: "g2"})), alwaysPD)

	// Decode of g1 fails: every request ends on d2 (after p2's prefill).
	d1.set(func(e *fakeEngine) { e.status = http.StatusInternalServerError })
	for i := 0; i < 10; i++ {
		r := h.chat("llama", decide)
		if r.status != 200 || engineOf(r) != "d2" {
			t.Fatalf("request %d: status %d from %q: %s", i, r.status, engineOf(r), r.body)
		}
		if d := decisionOf(t, r); d.Pair.Prefill != "default/p2" {
			t.Fatalf("answered by d2 after prefill on %s", d.Pair.Prefill)
		}
	}
	d1.set(func(e *fakeEngine) { e.status = 0 })
	d2.set(func(e *fakeEngine) { e.status = http.StatusInternalServerError })
	// Prefill fails on one g1 pod: the other g1 prefill pod takes it.
	p1.set(func(e *fakeEngine) { e.status = http.StatusServiceUnavailable })
	p1b.set(func(e *fakeEngine) { e.status = 0 })
	for i := 0; i < 10; i++ {
		r := h.chat("llama", decide)
		if r.status != 200 || engineOf(r) != "d1" {
			t.Fatalf("request %d: status %d from %q: %s", i, r.status, engineOf(r), r.body)
		}
		if d := decisionOf(t, r); d.Pair.Prefill != "default/p1b" {
			t.Fatalf("prefill on %s, want p1b", d.Pair.Prefill)
		}
	}
	// Nothing left: the error names the phase.
	p1b.set(func(e *fakeEngine) { e.status = http.StatusServiceUnavailable })
	r := h.chat("llama", nil)
	if r.status != http.StatusBadGateway || !strings.HasPrefix(errMsg(r), "decode:") && !strings.HasPrefix(errMsg(r), "prefill:") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	p2.set(func(e *fakeEngine) { e.status = http.StatusServiceUnavailable })
	r = h.chat("llama", nil)
	typ, _ := r.json["error"].(map[string]any)["type"].(string)
	if r.status != http.StatusBadGateway || typ != "upstream_prefill_error" || !strings.HasPrefix(errMsg(r), "prefill:") {
		t.Fatalf("status %d type %q: %s", r.status, typ, r.body)
	}
	// An engine refusing the request (4xx) is not retried elsewhere.
	p1.set(func(e *fakeEngine) { e.status = http.StatusBadRequest })
	p1b.set(func(e *fakeEngine) { e.status = http.StatusBadRequest })
	p2.set(func(e *fakeEngine) { e.status = http.StatusBadRequest })
	r = h.chat("llama", nil)
	if r.status != http.StatusBadRequest || !strings.HasPrefix(errMsg(r), "prefill:") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

// SGLang's bootstrap protocol: both phases sent at once with one room; a
// failing decode cancels the prefill.
func TestPDSGLangBootstrap(t *testing.T) {
	p, d := newEngine(t, "p1"), newEngine(t, "d1")
	h := start(t, docs(pdServer("s", "SGLang", "", ""), pdRoute("llama", "s"),
		pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1", extra: "kthena.io/bootstrap-port: '9001'"}, pdPod{e: d, role: "decode", group: "g1"})), alwaysPD)
	r := h.do("/v1/chat/completions", `{"model":"llama","stream":false,"messages":[{"role":"user","content":"hi"}]}`, decide)
	if r.status != 200 || engineOf(r) != "d1" || decisionOf(t, r).Connector != "sglang" {
		t.Fatalf("status %d from %q: %s %s", r.status, engineOf(r), r.body, r.header.Get("X-Kthena-Decision"))
	}
	pb, db := p.lastBody(), d.lastBody()
	if pb["bootstrap_room"] == nil || pb["bootstrap_room"] != db["bootstrap_room"] {
		t.Fatalf("rooms differ: prefill %v decode %v", pb["bootstrap_room"], db["bootstrap_room"])
	}
	if db["bootstrap_host"] != "127.0.0.1" || pb["bootstrap_host"] != "127.0.0.1" || db["bootstrap_port"] != 9001.0 {
		t.Fatalf("bootstrap host/port: prefill %v decode %v", pb, db)
	}
	r2 := h.chat("llama", nil)
	if r2.status != 200 || d.lastBody()["bootstrap_room"] == db["bootstrap_room"] {
		t.Fatal("second request reused the room")
	}

	// Decode fails while prefill is still working: prefill is cancelled.
	p.set(func(e *fakeEngine) { e.hang = true })
	d.set(func(e *fakeEngine) { e.status = http.StatusInternalServerError })
	r = h.chat("llama", nil)
	if r.status != http.StatusBadGateway || !strings.HasPrefix(errMsg(r), "decode:") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	select {
	case <-p.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("prefill request was not cancelled after decode failed")
	}
}

// trafficPolicy.timeout bounds each phase and the error names it.
func TestPDTimeoutPerPhase(t *testing.T) {
	p, d := newEngine(t, "p1"), newEngine(t, "d1")
	h := start(t, docs(pdServer("s", "vLLM", "http", "\n  trafficPolicy: {timeout: 300ms}"), pdRoute("llama", "s"),
		pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"}, pdPod{e: d, role: "decode", group: "g1"})), alwaysPD)
	for _, c := range []struct {
		hang  *fakeEngine
		phase string
	}{{p, "prefill"}, {d, "decode"}} {
		p.set(func(e *fakeEngine) { e.hang = false })
		d.set(func(e *fakeEngine) { e.hang = false })
		c.hang.set(func(e *fakeEngine) { e.hang = true })
		began := time.Now()
		r := h.chat("llama", nil)
		typ, _ := r.json["error"].(map[string]any)["type"].(string)
		if r.status != http.StatusGatewayTimeout || typ != "upstream_"+c.phase+"_error" || !strings.HasPrefix(errMsg(r), c.phase+":") {
			t.Fatalf("%s hangs: status %d type %q: %s", c.phase, r.status, typ, r.body)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("%s timeout took %v", c.phase, took)
		}
	}
}

// A client going away cancels whichever phase is running, and both phases
// of SGLang's concurrent exchange.
func TestPDClientCancellation(t *testing.T) {
	for _, c := range []struct {
		name, engine string
		hang         []string
	}{{"prefill", "vLLM", []string{"p"}}, {"decode", "vLLM", []string{"d"}}, {"sglang both", "SGLang", []string{"p", "d"}}} {
		t.Run(c.name, func(t *testing.T) {
			p, d := newEngine(t, "p1"), newEngine(t, "d1")
			conn := "http"
			if c.engine == "SGLang" {
				conn = ""
			}
			h := start(t, docs(pdServer("s", c.engine, conn, ""), pdRoute("llama", "s"),
				pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"}, pdPod{e: d, role: "decode", group: "g1"})), alwaysPD)
			byName := map[string]*fakeEngine{"p": p, "d": d}
			for _, n := range c.hang {
				byName[n].set(func(e *fakeEngine) { e.hang = true })
			}
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.r.Addr()+"/v1/chat/completions", strings.NewReader(`{"model":"llama"}`))
			done := make(chan struct{})
			go func() {
				defer close(done)
				if res, err := h.client.Do(req); err == nil {
					res.Body.Close()
				}
			}()
			for _, n := range c.hang {
				e := byName[n]
				eventually(t, n+" got the request", func() bool { return e.lastBody() != nil })
			}
			cancel()
			for _, n := range c.hang {
				select {
				case <-byName[n].cancelled:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s request was not cancelled", n)
				}
			}
			<-done
		})
	}
}

const deciderConfig = `scheduler:
  plugins:
    Score:
      enabled: [least-request]
  profiles:
    prefill:
      plugins: {Score: {enabled: [least-request]}}
    decode:
      plugins: {Score: {enabled: [prefix-cache, least-request]}}
  pdDecider: {minUncachedTokens: 200}
`

// The decider sends short and mostly-cached prompts straight to the decode
// pod and disaggregates the rest.
func TestPDDecider(t *testing.T) {
	p, d := newEngine(t, "p1"), newEngine(t, "d1")
	withTransferParams(p)
	h := start(t, docs(pdServer("s", "vLLM", "nixl", ""), pdRoute("llama", "s"),
		pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"}, pdPod{e: d, role: "decode", group: "g1"})), deciderConfig)
	chat := func(content string) (resp, pdDecisionHeader) {
		r := h.do("/v1/chat/completions", fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}]}`, content), decide)
		if r.status != 200 || engineOf(r) != "d1" {
			t.Fatalf("status %d from %q: %s", r.status, engineOf(r), r.body)
		}
		return r, decisionOf(t, r)
	}
	// Short: no prefill request at all, no transfer params on decode.
	_, dec := chat("hello there")
	if dec.Decider == nil || !dec.Decider.SkipPrefill || dec.Pair.Prefill != "" || p.served.Load() != 0 {
		t.Fatalf("short prompt disaggregated: %+v, prefill served %d", dec, p.served.Load())
	}
	if _, ok := d.lastBody()["kv_transfer_params"]; ok {
		t.Fatal("decode-only request carries kv_transfer_params")
	}
	// Long and new: disaggregated.
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 60) // ≈ 2,700 bytes
	_, dec = chat(long)
	if dec.Decider == nil || dec.Decider.SkipPrefill || dec.Pair.Prefill != "default/p1" || p.served.Load() != 1 {
		t.Fatalf("long prompt not disaggregated: %+v", dec)
	}
	// The same long prompt again, plus a short question: mostly cached on
	// the decode pod, so it prefills the rest itself.
	_, dec = chat(long + " And what is the answer?")
	if !dec.Decider.SkipPrefill || dec.Decider.CachedTokens < dec.Decider.PromptTokens-200 || p.served.Load() != 1 {
		t.Fatalf("mostly cached prompt disaggregated: %+v", dec.Decider)
	}
	if v := testutil.ToFloat64(h.r.Metrics.PDRequests.WithLabelValues("llama", "decode_only")); v != 2 {
		t.Fatalf("decode_only count %v", v)
	}
}

// Missing pods of a phase give a 503 that names the phase.
func TestPDMissingRole(t *testing.T) {
	p, d := newEngine(t, "p1"), newEngine(t, "d1")
	h := start(t, docs(pdServer("s", "vLLM", "http", ""), pdRoute("llama", "s"),
		pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"}, pdPod{e: d, role: "decode", group: "g2"})), alwaysPD)
	r := h.chat("llama", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(errMsg(r), "shares a group") {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	h.writeFile(h.epFile, docs(pdServer("s", "vLLM", "http", ""), pdRoute("llama", "s"), pdEndpoints("s", pdPod{e: p, role: "prefill", group: "g1"})))
	eventually(t, "reload", func() bool {
		r = h.chat("llama", nil)
		return strings.HasPrefix(errMsg(r), "decode:")
	})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}
