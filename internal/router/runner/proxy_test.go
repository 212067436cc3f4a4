package runner

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

const oneRoute = `kind: ModelRoute
metadata: {name: r}
spec: {modelName: llama, rules: [{targetModels: [{modelServerName: s}]}]}
`

func TestFailoverBeforeFirstByte(t *testing.T) {
	good, bad := newEngine(t, "good"), newEngine(t, "bad")
	bad.set(func(e *fakeEngine) { e.status = 503 })
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{good: "s", bad: "s"})), "")
	for i := 0; i < 20; i++ {
		r := h.chat("llama", nil)
		if r.status != 200 || engineOf(r) != "good" {
			t.Fatalf("request %d: status %d engine %q", i, r.status, engineOf(r))
		}
	}
	if len(bad.bodies) == 0 {
		t.Fatal("the failing engine was never tried, so failover was not exercised")
	}
}

func TestRetryOnSinglePod(t *testing.T) {
	e := newEngine(t, "e")
	e.set(func(e *fakeEngine) { e.failFirst = 2 })
	h := start(t, docs(server("s", "", "\n  trafficPolicy: {retry: {attempts: 2, retryInterval: 10ms}}"), oneRoute,
		endpoints(map[*fakeEngine]string{e: "s"})), "")
	r := h.chat("llama", nil)
	if r.status != 200 {
		t.Fatalf("status %d after retries: %s", r.status, r.body)
	}
	if n := len(e.bodies); n != 3 {
		t.Fatalf("engine saw %d attempts, want 3", n)
	}
	e.set(func(e *fakeEngine) { e.failFirst = 3 })
	if r := h.chat("llama", nil); r.status != 502 || !strings.Contains(errMsg(r), "3 attempt(s) failed") {
		t.Fatalf("exhausted retries: status %d %s", r.status, r.body)
	}
}

func readSSE(t *testing.T, h *harness, body string) (lines []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.r.Addr()+"/v1/chat/completions", strings.NewReader(body))
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func TestStreamingUsage(t *testing.T) {
	e := newEngine(t, "e")
	h := start(t, docs(server("s", "real-model", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "")

	// Client did not ask for usage: the router asks the engine and strips
	// the usage chunk.
	lines := readSSE(t, h, `{"model":"llama","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	so, _ := e.lastBody()["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Fatalf("engine did not get include_usage: %v", e.lastBody())
	}
	if len(lines) != 4 || lines[3] != "data: [DONE]" || strings.Contains(strings.Join(lines, "\n"), `"prompt_tokens"`) {
		t.Fatalf("stream without usage: %q", lines)
	}
	if !strings.Contains(lines[0], `"model":"real-model"`) {
		t.Fatalf("model not rewritten: %q", lines[0])
	}
	// Client asked: the usage chunk is passed through.
	lines = readSSE(t, h, `{"model":"llama","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	if len(lines) != 5 || !strings.Contains(lines[3], `"completion_tokens":3`) {
		t.Fatalf("stream with usage: %q", lines)
	}
	// Both requests' tokens were counted from the engine's usage.
	eventually(t, "token metrics", func() bool {
		mfs, _ := h.r.Registry.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "kthena_router_tokens_total" {
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetValue() == "output" && m.GetCounter().GetValue() == 6 {
							return true
						}
					}
				}
			}
		}
		return false
	})
}

func TestStreamChunksArriveBeforeEnd(t *testing.T) {
	release := make(chan struct{})
	e := newEngine(t, "e")
	mux := http.NewServeMux()
	_ = mux
	// Replace the engine's inference handler with one that sends a chunk
	// and then waits: the client must see the chunk before the end.
	orig := e.srv.Config.Handler
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			orig.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}]}\n\n"))
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write([]byte("data: [DONE]\n\n"))
	})
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "")
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.r.Addr()+"/v1/chat/completions", strings.NewReader(`{"model":"llama","stream":true}`))
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "first") {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(release)
}

func TestClientCancellationReachesEngine(t *testing.T) {
	e := newEngine(t, "e")
	e.set(func(e *fakeEngine) { e.hang = true })
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+h.r.Addr()+"/v1/chat/completions", strings.NewReader(`{"model":"llama"}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if res, err := h.client.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	eventually(t, "engine got the request", func() bool { return e.lastBody() != nil })
	cancel()
	select {
	case <-e.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("engine request was not cancelled")
	}
	<-done
}

// Large bodies wait in the kernel until most of them has arrived (the
// receive watermark); whatever the pace of the client, every body must
// arrive whole and the connection must serve small requests afterwards.
func TestLargeBodiesArriveWhole(t *testing.T) {
	e := newEngine(t, "e")
	h := start(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "")
	one := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	send := func(promptLen int, trickle bool) {
		t.Helper()
		body := `{"model":"llama","prompt":"` + strings.Repeat("p", promptLen) + `"}`
		var rd io.Reader = strings.NewReader(body)
		if trickle {
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < len(body); i += 8 << 10 {
					_, _ = pw.Write([]byte(body[i:min(i+8<<10, len(body))]))
					time.Sleep(time.Millisecond)
				}
				pw.Close()
			}()
			rd = pr
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.r.Addr()+"/v1/completions", rd)
		req.ContentLength = int64(len(body))
		res, err := one.Do(req)
		if err != nil {
			t.Fatalf("prompt of %d bytes (trickle %v): %v", promptLen, trickle, err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("prompt of %d bytes (trickle %v): status %d", promptLen, trickle, res.StatusCode)
		}
		if p, _ := e.lastBody()["prompt"].(string); len(p) != promptLen {
			t.Fatalf("engine got a prompt of %d bytes, want %d", len(p), promptLen)
		}
	}
	for _, n := range []int{70 << 10, 300 << 10, 1000 << 10} {
		send(n, false)
		send(n, true)
		send(10, false) // same connection, default watermark again
	}
}
