package runner

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/testing/loadgen"
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
	load := loadgen.Start(t, 8, func() error {
		_, err := postChat(hc, "http://"+addr+"/v1/chat/completions", body)
		return err
	})
	time.Sleep(200 * time.Millisecond)
	if err := a.r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // no router runs
	startWith(t, file, "", inherit)
	time.Sleep(300 * time.Millisecond)
	res := load.StopNoneFailed(t, "across the restart")
	if res.Slowest < 400*time.Millisecond {
		t.Fatalf("slowest request %s: none waited for the second router", res.Slowest)
	}
	t.Logf("%d requests, slowest %s", res.Sent, res.Slowest)
}
