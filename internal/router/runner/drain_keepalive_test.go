package runner

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestShutdownDelayKeepAliveClients: clients that keep their connections
// alive and send the next request as soon as the last one is answered lose
// nothing when the drain starts: each gets its connection closed after a
// response (Connection: close), never while its next request is on the way.
// Go's client does not resend a POST whose connection the server closed,
// so an idle connection closed at the wrong moment fails the request.
func TestShutdownDelayKeepAliveClients(t *testing.T) {
	e := newEngine(t, "e1")
	h := startWith(t, docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"})), "",
		func(o *Options) { o.ShutdownDelay = 1500 * time.Millisecond })
	body := `{"model":"llama","messages":[{"role":"user","content":"hi"}]}`
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	t.Cleanup(hc.CloseIdleConnections)

	stop := make(chan struct{})
	var sent, failed, closedByServer atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				res, err := hc.Post("http://"+h.r.Addr()+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.Close {
						closedByServer.Add(1)
					}
					if err == nil && res.StatusCode != http.StatusOK {
						err = &statusError{res.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // connections in use and kept alive
	done := make(chan error, 1)
	go func() { done <- h.r.Shutdown(context.Background()) }()
	time.Sleep(time.Second) // within the delay: the clients reconnect and keep going
	close(stop)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed when the drain started; first: %v", n, sent.Load(), firstErr.Load())
	}
	if closedByServer.Load() == 0 {
		t.Fatal("no response during the drain asked the client to close its connection")
	}
	t.Logf("%d requests, %d answered with Connection: close", sent.Load(), closedByServer.Load())
}

type statusError struct{ code int }

func (s *statusError) Error() string { return http.StatusText(s.code) }
