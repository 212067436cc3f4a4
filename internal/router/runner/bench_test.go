package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveRig is a router in-process with one engine behind a real socket
// that answers at once: what BenchmarkServe and the allocation budget
// measure.
type serveRig struct {
	r *Router
}

func newServeRig(tb testing.TB) *serveRig {
	tb.Helper()
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprint(w, "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n")
		case "/v1/models":
			fmt.Fprint(w, `{"object":"list","data":[{"id":"m"}]}`)
		default:
			if strings.Contains(r.Header.Get("Accept"), "event-stream") {
				w.Header().Set("Content-Type", "text/event-stream")
				for range 16 {
					fmt.Fprint(w, "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"}}]}\n\n")
				}
				fmt.Fprint(w, "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":16,\"total_tokens\":17}}\n\ndata: [DONE]\n\n")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
		}
	}))
	tb.Cleanup(engine.Close)
	dir := tb.TempDir()
	ep := filepath.Join(dir, "endpoints.yaml")
	file := "kind: ModelServer\nmetadata: {name: s}\nspec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: s}}, workloadPort: {port: 8000}}\n---\n" +
		"kind: ModelRoute\nmetadata: {name: r}\nspec: {modelName: m, rules: [{targetModels: [{modelServerName: s}]}]}\n---\n" +
		fmt.Sprintf("kind: Endpoints\nendpoints:\n- {name: e0, address: %q, labels: {app: s}}\n", strings.TrimPrefix(engine.URL, "http://"))
	if err := os.WriteFile(ep, []byte(file), 0o644); err != nil {
		tb.Fatal(err)
	}
	r, err := Start(context.Background(), Options{Addr: "127.0.0.1:0", EndpointsFile: ep, ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	for !r.ready() {
		time.Sleep(10 * time.Millisecond)
	}
	return &serveRig{r: r}
}

func chatBody(promptBytes int, stream bool) string {
	return fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}]}`,
		stream, strings.Repeat("lorem ipsum ", promptBytes/12))
}

// serve sends one request through the handler; it reports a failure.
func (g *serveRig) serve(tb testing.TB, body string, stream bool) {
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	w := httptest.NewRecorder()
	g.r.handler.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		tb.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

// BenchmarkServe measures the router's own work per request: the handler is
// called in-process (no client socket), the engine is a real socket that
// answers at once.
func BenchmarkServe(b *testing.B) {
	g := newServeRig(b)
	for _, size := range []int{100, 200 << 10} {
		body := chatBody(size, false)
		b.Run(fmt.Sprintf("prompt=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				g.serve(b, body, false)
			}
		})
	}
	body := chatBody(100, true)
	b.Run("stream", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.serve(b, body, true)
		}
	})
}
