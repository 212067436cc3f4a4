package runner

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hostileRouter is a router with short header and body timeouts.
func hostileRouter(t *testing.T) (*harness, *fakeEngine) {
	e := newEngine(t, "e1")
	return startWith(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "",
		func(o *Options) { o.HeaderTimeout, o.BodyTimeout = 300*time.Millisecond, 300*time.Millisecond }), e
}

// raw sends data on a new connection and returns what the router answers
// before it closes the connection (or 5 s pass).
func raw(t *testing.T, h *harness, data string, stall bool) (*http.Response, error) {
	t.Helper()
	c, err := net.Dial("tcp", h.r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, data); err != nil {
		return nil, err
	}
	if !stall {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	return http.ReadResponse(bufio.NewReader(c), nil)
}

func TestHostileClients(t *testing.T) {
	h, e := hostileRouter(t)
	body := `{"model":"llama","messages":[{"role":"user","content":"hi"}]}`

	t.Run("slow headers are cut", func(t *testing.T) {
		begin := time.Now()
		_, err := raw(t, h, "POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\n", true)
		if err == nil || time.Since(begin) > 3*time.Second {
			t.Fatalf("a connection stalling in its headers got an answer or lived %s (%v)", time.Since(begin), err)
		}
	})
	t.Run("slow body gets 408", func(t *testing.T) {
		res, err := raw(t, h, "POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":", true)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "request_timeout") {
			t.Fatalf("%d %s", res.StatusCode, b)
		}
	})
	t.Run("oversized headers get 431", func(t *testing.T) {
		res, err := raw(t, h, "POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nX-Big: "+strings.Repeat("a", 100<<10)+"\r\n\r\n", false)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%d", res.StatusCode)
		}
	})
	t.Run("conflicting Content-Length and Transfer-Encoding get 400", func(t *testing.T) {
		res, err := raw(t, h, fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", len(body)), false)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d", res.StatusCode)
		}
	})
	t.Run("malformed chunked body gets 400", func(t *testing.T) {
		res, err := raw(t, h, "POST /v1/chat/completions HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusBadRequest {
			t.Fatalf("%d %s", res.StatusCode, b)
		}
	})
	t.Run("many idle connections do not stop service", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 2000 {
			c, err := net.Dial("tcp", h.r.Addr())
			if err != nil {
				t.Fatalf("after %d connections: %v", len(conns), err)
			}
			conns = append(conns, c)
		}
		begin := time.Now()
		if r := h.chat("llama", nil); r.status != http.StatusOK {
			t.Fatalf("with 2000 idle connections: %d %s", r.status, r.body)
		}
		if d := time.Since(begin); d > 2*time.Second {
			t.Fatalf("a request took %s with 2000 idle connections", d)
		}
	})
	// A stream that lasts longer than the body deadline is not cut by it.
	e.set(func(e *fakeEngine) {
		e.respond = func(w http.ResponseWriter, _ map[string]any) bool {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 8 {
				fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"part%d \"}}]}\n\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return true
		}
	})
	r := h.do("/v1/chat/completions", `{"model":"llama","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "part7") || !strings.Contains(string(r.body), "[DONE]") {
		t.Fatalf("long stream: %d %s", r.status, r.body)
	}
}
