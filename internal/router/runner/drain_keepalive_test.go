package runner

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/testing/loadgen"
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

	var closedByServer atomic.Int64
	load := loadgen.Start(t, 16, func() error {
		closed, err := postChat(hc, "http://"+h.r.Addr()+"/v1/chat/completions", body)
		if closed {
			closedByServer.Add(1)
		}
		return err
	})
	time.Sleep(300 * time.Millisecond) // connections in use and kept alive
	done := make(chan error, 1)
	go func() { done <- h.r.Shutdown(context.Background()) }()
	time.Sleep(time.Second) // within the delay: the clients reconnect and keep going
	res := load.StopNoneFailed(t, "when the drain started")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if closedByServer.Load() == 0 {
		t.Fatal("no response during the drain asked the client to close its connection")
	}
	t.Logf("%d requests, %d answered with Connection: close", res.Sent, closedByServer.Load())
}

// postChat posts body to url and reads the answer: a status other than 200
// is an error; closed is whether the server asked the client to close the
// connection.
func postChat(hc *http.Client, url, body string) (closed bool, err error) {
	res, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return res.Close, err
	}
	if res.StatusCode != http.StatusOK {
		return res.Close, errors.New(http.StatusText(res.StatusCode))
	}
	return res.Close, nil
}
