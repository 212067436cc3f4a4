package director_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
)

// fault is what an engine does to one request: after `after` data lines
// it cuts the connection ("cut"), sends an error event and ends ("event"),
// or goes silent ("hang"); "cutbody" cuts a non-streamed answer in its
// middle; "" relays the whole answer.
type fault struct {
	kind  string
	after int
}

// received is one request an engine got and what it answered.
type received struct {
	engine string
	body   string
	text   string // the answer's text it relayed
	usage  map[string]any
}

// engines is a set of simulated engines, each behind a small proxy that
// records what it receives and injects the faults of plan (indexed by the
// order of arrival across all engines).
type engines struct {
	mu    sync.Mutex
	plan  func(n int) fault
	got   []received
	sims  *sim.Fleet
	addrs []string
}

func startEngines(t *testing.T, n int, plan func(n int) fault) *engines {
	t.Helper()
	cfgs := make([]sim.Config, n)
	for i := range cfgs {
		cfgs[i] = sim.Config{Mode: sim.ModeEcho, TimeScale: 0.005}
	}
	return startSims(t, cfgs, plan)
}

func startSims(t *testing.T, cfgs []sim.Config, plan func(n int) fault) *engines {
	t.Helper()
	n := len(cfgs)
	f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard()}, cfgs...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	e := &engines{plan: plan, sims: f}
	for i := range n {
		target, _ := url.Parse(f.URL(i))
		name := fmt.Sprintf("engine-%d", i)
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				rp.ServeHTTP(w, r) // metrics, models
				return
			}
			e.serve(w, r, name, f.URL(i))
		}))
		t.Cleanup(srv.Close)
		e.addrs = append(e.addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	return e
}

func (e *engines) serve(w http.ResponseWriter, r *http.Request, name, simURL string) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	idx := len(e.got)
	e.got = append(e.got, received{engine: name, body: string(body)})
	f := e.plan(idx)
	e.mu.Unlock()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, simURL+r.URL.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	fl := w.(http.Flusher)
	if f.kind == "cutbody" {
		b, _ := io.ReadAll(resp.Body)
		_, _ = w.Write(b[:len(b)/2])
		fl.Flush()
		panic(http.ErrAbortHandler)
	}
	br := bufio.NewReader(resp.Body)
	var text strings.Builder
	var usage map[string]any
	defer func() {
		e.mu.Lock()
		e.got[idx].text, e.got[idx].usage = text.String(), usage
		e.mu.Unlock()
	}()
	data := 0
	for {
		line, err := br.ReadBytes('\n')
		if bytes.HasPrefix(line, []byte("data:")) {
			if f.kind != "" && data == f.after {
				switch f.kind {
				case "cut":
					fl.Flush()
					panic(http.ErrAbortHandler) // the connection closes mid-body
				case "event":
					_, _ = w.Write([]byte(`data: {"error":{"message":"engine step failed","type":"InternalServerError","param":null,"code":500}}` + "\n\n"))
					return
				case "hang":
					fl.Flush()
					<-r.Context().Done()
					return
				}
			}
			data++
			if ch := chunkOf(line); ch != nil {
				text.WriteString(textOf(ch))
				if u, ok := ch["usage"].(map[string]any); ok {
					usage = u
				}
			}
		}
		_, _ = w.Write(line)
		fl.Flush()
		if err != nil {
			return
		}
	}
}

func (e *engines) received() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.got...)
}

func chunkOf(line []byte) map[string]any {
	d := bytes.TrimSpace(bytes.TrimPrefix(line, []byte("data:")))
	var m map[string]any
	if json.Unmarshal(d, &m) != nil {
		return nil
	}
	return m
}

func textOf(ch map[string]any) string {
	cs, _ := ch["choices"].([]any)
	var b strings.Builder
	for _, c := range cs {
		c := c.(map[string]any)
		if d, ok := c["delta"].(map[string]any); ok {
			s, _ := d["content"].(string)
			b.WriteString(s)
		}
		if s, ok := c["text"].(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

// startRouter runs a router in front of the engines' proxies, serving model
// "llama" from a ModelServer whose model is the simulator's.
func startRouter(t *testing.T, e *engines, migration string) *runner.Router {
	t.Helper()
	return startRouterWith(t, e, func(int) string { return "" }, "workloadSelector: {matchLabels: {app: llama}}", config.Default+migration)
}

// startRouterWith is startRouter with more labels per engine, another
// workload selector and another configuration.
func startRouterWith(t *testing.T, e *engines, labels func(i int) string, selector, cfg string) *runner.Router {
	t.Helper()
	dir := t.TempDir()
	var eps strings.Builder
	eps.WriteString("kind: Endpoints\nendpoints:\n")
	for i, a := range e.addrs {
		fmt.Fprintf(&eps, "- {name: engine-%d, address: %q, labels: {app: llama%s}}\n", i, a, labels(i))
	}
	file := fmt.Sprintf(`apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: llama, namespace: default}
spec:
  model: %s
  inferenceEngine: vLLM
  %s
  workloadPort: {port: 8000}
---
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: llama, namespace: default}
spec:
  modelName: llama
  rules: [{name: r, targetModels: [{modelServerName: llama}]}]
---
%s`, sim.DefaultModel, selector, eps.String())
	epFile, cfgFile := filepath.Join(dir, "endpoints.yaml"), filepath.Join(dir, "router.yaml")
	require.NoError(t, os.WriteFile(epFile, []byte(file), 0o644))
	require.NoError(t, os.WriteFile(cfgFile, []byte(cfg), 0o644))
	r, err := runner.Start(context.Background(), runner.Options{Addr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile,
		ScrapeInterval: 50 * time.Millisecond, MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute, Log: logr.Discard()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + r.Addr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond)
	return r
}

// clientStream is what a client read from a streamed answer.
type clientStream struct {
	chunks []map[string]any // data events other than [DONE], in order
	done   int              // [DONE] events
	last   string           // the last data payload
	text   string
}

func stream(t *testing.T, r *runner.Router, path, body string) clientStream {
	t.Helper()
	resp, err := http.Post("http://"+r.Addr()+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the client's stream ends cleanly, never cut")
	var s clientStream
	var text strings.Builder
	for _, ev := range strings.Split(string(raw), "\n\n") {
		ev = strings.TrimSpace(ev)
		if ev == "" {
			continue
		}
		require.True(t, strings.HasPrefix(ev, "data: "), "event %q", ev)
		d := strings.TrimPrefix(ev, "data: ")
		s.last = d
		if d == "[DONE]" {
			s.done++
			continue
		}
		require.Zero(t, s.done, "nothing after [DONE]")
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(d), &m), "event %q", d)
		s.chunks = append(s.chunks, m)
		text.WriteString(textOf(m))
	}
	s.text = text.String()
	return s
}

// wellFormed checks one uninterrupted stream: one id, created and model,
// one role delta (chat), one [DONE] at the end, finish_reason once.
func (s clientStream) wellFormed(t *testing.T, chat bool) {
	t.Helper()
	require.NotEmpty(t, s.chunks)
	first := s.chunks[0]
	roles, finishes := 0, 0
	for _, c := range s.chunks {
		assert.Equal(t, first["id"], c["id"])
		assert.Equal(t, first["created"], c["created"])
		assert.Equal(t, first["model"], c["model"])
		for _, ch := range c["choices"].([]any) {
			ch := ch.(map[string]any)
			if d, ok := ch["delta"].(map[string]any); ok && d["role"] != nil {
				roles++
			}
			if ch["finish_reason"] != nil {
				finishes++
			}
		}
	}
	if chat {
		assert.Equal(t, 1, roles, "one role delta")
	}
	assert.Equal(t, 1, finishes, "one finish_reason")
	assert.Equal(t, 1, s.done, "one [DONE]")
	assert.Equal(t, "[DONE]", s.last)
}

func (s clientStream) usages() []map[string]any {
	var out []map[string]any
	for _, c := range s.chunks {
		if u, ok := c["usage"].(map[string]any); ok {
			out = append(out, u)
		}
	}
	return out
}

func migrations(r *runner.Router, outcome string) float64 {
	return testutil.ToFloat64(r.Metrics.Migrations.WithLabelValues("default/llama", outcome))
}

const question = "The quick brown fox jumps over the lazy dog near the river bank"

func TestMigrationChatAfterConnectionCut(t *testing.T) {
	e := startEngines(t, 2, func(n int) fault {
		if n == 0 {
			return fault{kind: "cut", after: 4} // the role chunk and three tokens reach the client
		}
		return fault{}
	})
	r := startRouter(t, e, "")
	body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}],"max_tokens":30,"stream":true,"stream_options":{"include_usage":true}}`, question)
	s := stream(t, r, "/v1/chat/completions", body)

	got := e.received()
	require.Len(t, got, 2)
	assert.NotEqual(t, got[0].engine, got[1].engine, "the continuation goes to another pod")
	assert.Equal(t, "The quick brown", got[0].text)
	want := `{"add_generation_prompt":false,"continue_final_message":true,"max_tokens":27,` +
		`"messages":[{"role":"user","content":"` + question + `"},{"role":"assistant","content":"The quick brown"}],` +
		`"model":"` + sim.DefaultModel + `","stream":true,"stream_options":{"include_usage":true}}`
	assert.Equal(t, want, got[1].body, "continuation body")

	s.wellFormed(t, true)
	assert.Equal(t, question, s.text, "the client reads the first part and the continuation as one answer")
	assert.Equal(t, got[0].text+got[1].text, s.text)
	assert.Equal(t, "stop", s.chunks[len(s.chunks)-2]["choices"].([]any)[0].(map[string]any)["finish_reason"])

	// Usage once: the original prompt, every streamed token.
	us := s.usages()
	require.Len(t, us, 1)
	cont := got[1].usage
	require.NotNil(t, cont)
	assert.Equal(t, cont["completion_tokens"].(float64)+3, us[0]["completion_tokens"])
	assert.Equal(t, cont["prompt_tokens"].(float64)-3, us[0]["prompt_tokens"])
	direct := directUsage(t, e.sims.URL(0), question)
	assert.Equal(t, direct["prompt_tokens"], us[0]["prompt_tokens"], "prompt tokens of the original request")
	assert.Equal(t, direct["completion_tokens"], us[0]["completion_tokens"], "as many output tokens as without the failure")
	assert.Equal(t, 1.0, migrations(r, "completed"))
}

// directUsage is the usage of the request served by an engine directly.
func directUsage(t *testing.T, simURL, q string) map[string]any {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"max_tokens":30}`, sim.DefaultModel, q)
	resp, err := http.Post(simURL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out["usage"].(map[string]any)
}

func TestMigrationCompletionsAfterErrorEvent(t *testing.T) {
	e := startEngines(t, 2, func(n int) fault {
		if n == 0 {
			return fault{kind: "event", after: 3}
		}
		return fault{}
	})
	r := startRouter(t, e, "")
	s := stream(t, r, "/v1/completions", `{"model":"llama","prompt":"Once upon a time","max_tokens":8,"stream":true}`)

	got := e.received()
	require.Len(t, got, 2)
	assert.Equal(t, "Once upon a", got[0].text)
	want := `{"max_tokens":5,"model":"` + sim.DefaultModel + `","prompt":"Once upon a timeOnce upon a","stream":true,"stream_options":{"include_usage":true}}`
	assert.Equal(t, want, got[1].body, "continuation body")
	s.wellFormed(t, false)
	assert.Equal(t, got[0].text+got[1].text, s.text)
	assert.Empty(t, s.usages(), "no usage chunk the client did not ask for")
	for _, c := range s.chunks {
		assert.Nil(t, c["error"], "the engine's error event does not reach the client")
	}
}

func TestMigrationOnIdleTimeout(t *testing.T) {
	e := startEngines(t, 2, func(n int) fault {
		if n == 0 {
			return fault{kind: "hang", after: 1} // silent right after the role chunk
		}
		return fault{}
	})
	r := startRouter(t, e, "migration: {idleTimeout: 500ms}\n")
	body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}],"max_tokens":30,"stream":true}`, question)
	s := stream(t, r, "/v1/chat/completions", body)
	got := e.received()
	require.GreaterOrEqual(t, len(got), 2)
	assert.Empty(t, got[0].text)
	assert.NotContains(t, got[1].body, `"role":"assistant"`, "nothing streamed yet: the request is sent again")
	s.wellFormed(t, true)
	assert.Equal(t, question, s.text)
}

func TestMigrationBounded(t *testing.T) {
	always := func(int) fault { return fault{kind: "cut", after: 2} }
	body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}],"max_tokens":30,"stream":true}`, question)
	for _, tc := range []struct {
		name      string
		engines   int
		config    string
		requests  int
		outcome   string
		errorText string
	}{
		{"attempts used up", 4, "", 3, "exhausted", "2 continuation(s) failed"},
		{"no other pod", 2, "", 2, "no_pod", "no other pod of ModelServer default/llama"},
		{"migration off", 2, "migration: {maxAttempts: 0}\n", 1, "disabled", "migration is off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngines(t, tc.engines, always)
			r := startRouter(t, e, tc.config)
			s := stream(t, r, "/v1/chat/completions", body)
			got := e.received()
			require.Len(t, got, tc.requests, "bounded attempts")
			assert.Zero(t, s.done, "no [DONE] after a failure")
			last := s.chunks[len(s.chunks)-1]
			errObj, ok := last["error"].(map[string]any)
			require.True(t, ok, "the stream ends with an error event, got %v", last)
			assert.Equal(t, "upstream_stream_error", errObj["type"])
			assert.Contains(t, errObj["message"], tc.errorText)
			var text strings.Builder
			for _, g := range got {
				text.WriteString(g.text)
			}
			assert.Equal(t, text.String(), s.text, "what was streamed reached the client once")
			assert.Equal(t, 1.0, migrations(r, tc.outcome))
		})
	}
}

func TestNonStreamedAnswerRetriedWhole(t *testing.T) {
	body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}],"max_tokens":30}`, question)
	post := func(r *runner.Router) (int, map[string]any) {
		resp, err := http.Post("http://"+r.Addr()+"/v1/chat/completions", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "a complete JSON answer, never a cut one: %q", raw)
		return resp.StatusCode, out
	}

	t.Run("retried", func(t *testing.T) {
		e := startEngines(t, 2, func(n int) fault {
			if n == 0 {
				return fault{kind: "cutbody"}
			}
			return fault{}
		})
		r := startRouter(t, e, "")
		status, out := post(r)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, question, out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"])
		got := e.received()
		require.Len(t, got, 2)
		assert.Equal(t, got[0].body, got[1].body, "the same request, sent again whole")
		assert.Equal(t, 1.0, migrations(r, "retried_whole"))
	})
	t.Run("bounded", func(t *testing.T) {
		e := startEngines(t, 3, func(int) fault { return fault{kind: "cutbody"} })
		r := startRouter(t, e, "migration: {maxAttempts: 1}\n")
		status, out := post(r)
		assert.Equal(t, http.StatusBadGateway, status)
		assert.Equal(t, "upstream_error", out["error"].(map[string]any)["type"])
		assert.Len(t, e.received(), 2, "one retry")
	})
}

// A disaggregated ModelServer (vLLM, NIXL): the decode pod fails
// mid-stream and the answer is continued on the other decode pod as an
// aggregated request, without a KV transfer.
func TestMigrationPDDecode(t *testing.T) {
	cfg := func(role sim.KVRole) sim.Config {
		return sim.Config{Mode: sim.ModeEcho, TimeScale: 0.005, KVRole: role}
	}
	e := startSims(t, []sim.Config{cfg(sim.RolePrefill), cfg(sim.RoleDecode), cfg(sim.RolePrefill), cfg(sim.RoleDecode)}, func(n int) fault {
		if n == 1 { // the first decode request, after its prefill
			return fault{kind: "cut", after: 4}
		}
		return fault{}
	})
	roles := []string{"prefill", "decode"}
	always := strings.Replace(config.Default, config.DefaultPDDecider, "", 1)
	r := startRouterWith(t, e, func(i int) string { return fmt.Sprintf(", role: %s, group: g%d", roles[i%2], i/2) },
		"workloadSelector: {matchLabels: {app: llama}, pdGroup: {groupKey: group, prefillLabels: {role: prefill}, decodeLabels: {role: decode}}}\n  kvConnector: {type: nixl}", always)
	body := fmt.Sprintf(`{"model":"llama","messages":[{"role":"user","content":%q}],"max_tokens":30,"stream":true,"stream_options":{"include_usage":true}}`, question)
	s := stream(t, r, "/v1/chat/completions", body)

	got := e.received()
	require.Len(t, got, 3, "prefill, decode, continuation")
	decodes := map[string]bool{"engine-1": true, "engine-3": true}
	assert.False(t, decodes[got[0].engine], "prefill first")
	assert.True(t, decodes[got[1].engine] && decodes[got[2].engine] && got[1].engine != got[2].engine, "continued on the other decode pod: %s then %s", got[1].engine, got[2].engine)
	assert.Contains(t, got[1].body, "kv_transfer_params")
	want := `{"add_generation_prompt":false,"continue_final_message":true,"max_tokens":27,` +
		`"messages":[{"role":"user","content":"` + question + `"},{"role":"assistant","content":"The quick brown"}],` +
		`"model":"` + sim.DefaultModel + `","stream":true,"stream_options":{"include_usage":true}}`
	assert.Equal(t, want, got[2].body, "an aggregated continuation, no KV transfer")
	s.wellFormed(t, true)
	assert.Equal(t, question, s.text)
	require.Len(t, s.usages(), 1)
	assert.Equal(t, 1.0, migrations(r, "completed"))
}
