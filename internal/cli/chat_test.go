package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamingRouter is an OpenAI-compatible endpoint that streams tokens
// as SSE, one chunk at a time, and records the requests it got.
type streamingRouter struct {
	mu       sync.Mutex
	requests []map[string]any
	// release, when set, holds the last token until the test has seen the
	// first ones, proving tokens are printed as they arrive.
	release chan struct{}
}

func (s *streamingRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	_ = json.Unmarshal(body, &req)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	switch req["model"] {
	case "missing":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"message":"model \"missing\" has no route","type":"route_not_found","param":null,"code":404}}`)
		return
	case "plain":
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "upstream\nexploded")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	send := func(data string) {
		_, _ = fmt.Fprintf(w, "data: %s\n\n", data)
		flusher.Flush()
	}
	send(`{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"}}]}`)
	for _, tok := range []string{"Hello", ",", " world"} {
		send(fmt.Sprintf(`{"id":"c1","choices":[{"index":0,"delta":{"content":%q}}]}`, tok))
	}
	if s.release != nil {
		<-s.release
	}
	if req["model"] == "failing" {
		send(`{"error":{"message":"engine crashed mid-stream","type":"upstream","code":502}}`)
		return
	}
	send(`{"id":"c1","choices":[{"index":0,"delta":{"content":"!"},"finish_reason":"stop"}]}`)
	send("[DONE]")
}

func TestChat(t *testing.T) {
	router := &streamingRouter{}
	srv := httptest.NewServer(router)
	defer srv.Close()

	out, errOut, code := kthena(t, "chat", "demo", "Say hello", "--router-url", srv.URL, "--max-tokens", "16", "--system", "be brief")
	if code != 0 || out != "Hello, world!\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	req := router.requests[0]
	msgs, _ := json.Marshal(req["messages"])
	if req["model"] != "demo" || req["stream"] != true || req["max_tokens"] != float64(16) ||
		string(msgs) != `[{"content":"be brief","role":"system"},{"content":"Say hello","role":"user"}]` {
		t.Errorf("request = %v", req)
	}

	// $KTHENA_ROUTER_URL when there is no flag.
	t.Setenv("KTHENA_ROUTER_URL", srv.URL)
	if out, errOut, code := kthena(t, "chat", "demo", "hi"); code != 0 || out != "Hello, world!\n" {
		t.Errorf("with $KTHENA_ROUTER_URL: exit %d, %q, %q", code, out, errOut)
	}
}

// TestChatStreams: the first tokens are printed before the reply ends.
func TestChatStreams(t *testing.T) {
	router := &streamingRouter{release: make(chan struct{})}
	srv := httptest.NewServer(router)
	defer srv.Close()
	r, w := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- Execute([]string{"chat", "demo", "hi", "--router-url", srv.URL}, w, io.Discard)
		_ = w.Close()
	}()
	buf := make([]byte, 0, 64)
	deadline := time.After(10 * time.Second)
	for string(buf) != "Hello, world" {
		chunk := make([]byte, 64)
		n, err := r.Read(chunk)
		if err != nil {
			t.Fatalf("read %q then %v", buf, err)
		}
		buf = append(buf, chunk[:n]...)
		select {
		case <-deadline:
			t.Fatalf("only %q printed while the reply was still streaming", buf)
		default:
		}
	}
	close(router.release)
	rest, _ := io.ReadAll(r)
	if code := <-done; code != 0 || string(rest) != "!\n" {
		t.Errorf("exit %d, rest %q", code, rest)
	}
}

func TestChatErrors(t *testing.T) {
	srv := httptest.NewServer(&streamingRouter{})
	defer srv.Close()
	oneLineError(t, `router: model "missing" has no route (HTTP 404)`, "chat", "missing", "hi", "--router-url", srv.URL)
	oneLineError(t, "router: HTTP 502: upstream; exploded", "chat", "plain", "hi", "--router-url", srv.URL)
	oneLineError(t, "accepts 2 arg(s), received 1", "chat", "demo")

	// An error event after some tokens: the tokens stay, the error is one line.
	out, errOut, code := kthena(t, "chat", "failing", "hi", "--router-url", srv.URL)
	if code == 0 || out != "Hello, world\n" || errOut != "error: router: engine crashed mid-stream\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	url := closed.URL
	closed.Close()
	oneLineError(t, "not reachable", "chat", "demo", "hi", "--router-url", url)
}

// TestChatLocalRouter: without a URL, chat finds the local platform's router.
func TestChatLocalRouter(t *testing.T) {
	srv := httptest.NewServer(&streamingRouter{})
	defer srv.Close()
	state := t.TempDir()
	port := srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":")+1:]
	if err := os.WriteFile(filepath.Join(state, "ports.json"), []byte(`{"apiServer":1,"router":`+port+`}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := kthena(t, "chat", "demo", "hi", "--state-dir", state); code != 0 || out != "Hello, world!\n" {
		t.Errorf("exit %d, %q, %q", code, out, errOut)
	}
	if got := localRouterURL(t.TempDir()); got != "http://127.0.0.1:8080" {
		t.Errorf("without ports.json the router is %s, want kthena up's default", got)
	}
}
