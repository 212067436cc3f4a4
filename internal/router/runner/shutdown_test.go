package runner

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestShutdownDelay: during the shutdown delay the router fails readiness
// but still answers, closing each connection after its response; then it
// stops accepting.
func TestShutdownDelay(t *testing.T) {
	e := newEngine(t, "e1")
	h := startWith(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "",
		func(o *Options) { o.ShutdownDelay = time.Second })
	body := `{"model":"llama","messages":[{"role":"user","content":"hi"}]}`

	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- h.r.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)

	if res, err := h.client.Get("http://" + h.r.Addr() + "/readyz"); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	// New connections are still answered, each closed after its response.
	res, err := http.Post("http://"+h.r.Addr()+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("request during the delay: %v %v", res, err)
	}
	res.Body.Close()
	if !res.Close {
		t.Error("response during the delay does not close the connection")
	}

	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("shutdown returned after %s, before the 1s delay", took)
	}
	if _, err := net.DialTimeout("tcp", h.r.Addr(), time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("router still accepting after shutdown: %v", err)
	}
}
