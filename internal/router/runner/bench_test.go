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

// BenchmarkServe measures the router's own work per request: the handler is
// called in-process (no client socket), the engine is a real socket that
// answers at once.
func BenchmarkServe(b *testing.B) {
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprint(w, "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\n")
		case "/v1/models":
			fmt.Fprint(w, `{"object":"list","data":[{"id":"m"}]}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
		}
	}))
	defer engine.Close()
	dir := b.TempDir()
	ep := filepath.Join(dir, "endpoints.yaml")
	file := "kind: ModelServer\nmetadata: {name: s}\nspec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: s}}, workloadPort: {port: 8000}}\n---\n" +
		"kind: ModelRoute\nmetadata: {name: r}\nspec: {modelName: m, rules: [{targetModels: [{modelServerName: s}]}]}\n---\n" +
		fmt.Sprintf("kind: Endpoints\nendpoints:\n- {name: e0, address: %q, labels: {app: s}}\n", strings.TrimPrefix(engine.URL, "http://"))
	if err := os.WriteFile(ep, []byte(file), 0o644); err != nil {
		b.Fatal(err)
	}
	r, err := Start(context.Background(), Options{Addr: "127.0.0.1:0", EndpointsFile: ep, ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown(context.Background()) }()
	for !r.ready() {
		time.Sleep(10 * time.Millisecond)
	}
	for _, size := range []int{100, 200 << 10} {
		body := fmt.Sprintf(`{"model":"m","messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}]}`, strings.Repeat("lorem ipsum ", size/12))
		b.Run(fmt.Sprintf("prompt=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				r.handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
