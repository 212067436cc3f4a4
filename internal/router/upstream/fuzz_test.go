package upstream

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// FuzzResponse: whatever bytes an engine answers with, a round trip ends
// with an error or a response whose body reads to an end: no panic, no
// hang, and a connection that answered garbage is not reused.
func FuzzResponse(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: x\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.0 204 No Content\r\n\r\n",
		"garbage",
		"",
	} {
		f.Add([]byte(seed))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	answers := make(chan []byte)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			payload := <-answers
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request
				_, _ = c.Write(payload)
			}()
		}
	}()
	tr := New()
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"
	f.Fuzz(func(t *testing.T, payload []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		body := []byte(`{"model":"m"}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, NewBody([][]byte{body}))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(body))
		// Every round trip dials: the previous connection was closed by
		// the server, and a pooled one would need no answer.
		go func() { answers <- payload }()
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := tr.RoundTrip(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}()
		select {
		case <-done:
		case <-time.After(8 * time.Second):
			t.Fatalf("round trip hung on %q", bytes.TrimSpace(payload))
		}
	})
}
