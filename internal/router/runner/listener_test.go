package runner

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestInheritedListenerRestart: a router restarted on a socket its
// supervisor keeps open (kthena up's router) refuses nobody: connections
// made while no router runs wait in the socket's backlog and are answered
// by the next router once it is ready.
func TestInheritedListenerRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	addr := ln.Addr().String()
	inherit := func(o *Options) {
		l, err := net.FileListener(sock) // what --listen-fd does with its descriptor
		if err != nil {
			t.Fatal(err)
		}
		o.Listener = l
		o.ShutdownDelay = 300 * time.Millisecond
	}
	e := newEngine(t, "e1")
	file := docs(server("s", "", ""), oneRoute, endpoints(map[*fakeEngine]string{e: "s"}))
	a := startWith(t, file, "", inherit)

	body := `{"model":"llama","messages":[{"role":"user","content":"hi"}]}`
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(hc.CloseIdleConnections)
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var slowest atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				sent.Add(1)
				res, err := hc.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = &statusError{res.StatusCode}
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				if d := int64(time.Since(began)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := a.r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // no router runs
	startWith(t, file, "", inherit)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed across the restart; first: %v", n, sent.Load(), firstErr.Load())
	}
	if d := time.Duration(slowest.Load()); d < 400*time.Millisecond {
		t.Fatalf("slowest request %s: none waited for the second router", d)
	}
	t.Logf("%d requests, slowest %s", sent.Load(), time.Duration(slowest.Load()))
}
