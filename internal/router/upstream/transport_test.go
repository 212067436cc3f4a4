package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func post(t *testing.T, tr *Transport, ctx context.Context, url string, segs ...string) (*http.Response, error) {
	t.Helper()
	var bs [][]byte
	n := 0
	for _, s := range segs {
		bs = append(bs, []byte(s))
		n += len(s)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, NewBody(bs))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(n)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "r1")
	return tr.RoundTrip(req)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return string(b)
}

func TestRoundTripReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s %s %d", r.URL.RequestURI(), r.Header.Get("X-Request-Id"), r.Host, b, r.ContentLength)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := New()
	defer tr.CloseIdleConnections()
	host := strings.TrimPrefix(srv.URL, "http://")
	for i := range 5 {
		resp, err := post(t, tr, context.Background(), srv.URL+"/v1/completions?x=1", `{"model":`, `"m"`, `}`)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`/v1/completions?x=1 r1 %s {"model":"m"} 13`, host)
		if got := readAll(t, resp); got != want || resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, got, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential requests, want 1", n)
	}
}

func TestLargeSegmentedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %d", len(b), strings.Count(string(b), "abc"))
	}))
	defer srv.Close()
	tr := New()
	big := strings.Repeat("abc", 100_000)
	resp, err := post(t, tr, context.Background(), srv.URL, "{", big, big, "}")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "600002 200000" {
		t.Fatalf("engine saw %q", got)
	}
}

// A pooled connection the engine closed while idle is found before use
// and replaced: the request succeeds.
func TestIdleConnectionClosedByEngine(t *testing.T) {
	defer func(d time.Duration) { recentIdle = d }(recentIdle)
	recentIdle = 0 // peek at every reuse
	tr := New()
	// 200 ms apart: the engine closes each idle connection in between.
	postOKEvery(t, tr, idleClosingEngine(t, 50*time.Millisecond), 3, 200*time.Millisecond)
	if tr.dials != 3 {
		t.Fatalf("%d dials, want 3 (each idle connection was closed by the engine)", tr.dials)
	}
}

// idleClosingEngine answers "ok" and closes connections idle for idle; its
// URL.
func idleClosingEngine(t *testing.T, idle time.Duration) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	}))
	srv.Config.IdleTimeout = idle
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// postOKEvery posts n requests to url through tr, pause apart, each of
// which must be answered "ok".
func postOKEvery(t *testing.T, tr *Transport, url string, n int, pause time.Duration) {
	t.Helper()
	for i := range n {
		resp, err := post(t, tr, context.Background(), url, "{}")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
		time.Sleep(pause)
	}
}

// A connection closed by the engine within recentIdle of its last answer
// is not peeked at: the request goes out on it, fails before any byte and
// is replayed on a new connection.
func TestRecentlyIdleClosedConnectionIsReplayed(t *testing.T) {
	tr := New()
	postOKEvery(t, tr, idleClosingEngine(t, 20*time.Millisecond), 2, 100*time.Millisecond)
	if tr.dials != 2 {
		t.Fatalf("%d dials, want 2", tr.dials)
	}
}

// An engine that drops the connection without answering (the race the
// peek cannot see) gets the request again on a new connection when the
// dropped one was reused.
func TestReusedConnectionDroppedIsRetriedOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var served atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if served.Add(1) == 2 {
						return // drop the reused connection without a word
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}(c)
		}
	}()
	tr := New()
	url := "http://" + ln.Addr().String() + "/v1/completions"
	for i := range 2 {
		resp, err := post(t, tr, context.Background(), url, "{}")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := readAll(t, resp); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if n := served.Load(); n != 3 {
		t.Fatalf("engine saw %d requests, want 3 (one dropped and sent again)", n)
	}
}

func TestStreamingResponseArrivesAsSent(t *testing.T) {
	next := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	defer srv.Close()
	tr := New()
	resp, err := post(t, tr, context.Background(), srv.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("chunk %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the stream: %v", err)
	}
	if len(tr.idle) != 1 || len(tr.idle[strings.TrimPrefix(srv.URL, "http://")]) != 1 {
		t.Fatalf("connection not pooled after a complete stream: %v", tr.idle)
	}
}

func TestCancelClosesTheEngineConnection(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: 0\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(gone)
	}))
	defer srv.Close()
	tr := New()
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := post(t, tr, ctx, srv.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not see the cancellation")
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("reading a cancelled response succeeded")
	}
	if len(tr.idle) != 0 {
		t.Fatal("a cancelled connection was pooled")
	}
}

func TestCancelWhileWaitingForHeaders(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	tr := New()
	cause := errors.New("header timeout")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	start := time.Now()
	_, err := post(t, tr, ctx, srv.URL, "{}")
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the context's cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %s", d)
	}
}

func TestInterimResponsesAreSkipped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
	}()
	resp, err := post(t, New(), context.Background(), "http://"+ln.Addr().String()+"/", "{}")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 201 || got != "done" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
}

func TestDialErrorIsADialOpError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = post(t, New(), context.Background(), "http://"+addr+"/", "{}")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "dial" {
		t.Fatalf("err = %v, want a dial *net.OpError", err)
	}
}

func TestHeaderValuesCannotSplitTheHead(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q %q", r.Header.Get("X-Bad"), r.Header.Get("X-Injected"))
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, NewBody([][]byte{[]byte("{}")}))
	req.ContentLength = 2
	req.Header["X-Bad"] = []string{"a\r\nX-Injected: yes"}
	resp, err := New().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != `"" ""` {
		t.Fatalf("engine saw %s", got)
	}
}

func TestPlainReaderBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s|%v", b, r.TransferEncoding)
	}))
	defer srv.Close()
	tr := New()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("sized"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "sized|[]" {
		t.Fatalf("sized body: %q", got)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("unsized")))
	req.ContentLength = -1
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "unsized|[chunked]" {
		t.Fatalf("chunked body: %q", got)
	}
}

// Connections to a pod that receives no more requests (it left) are
// closed once idle for the timeout.
func TestIdleConnectionsAreSwept(t *testing.T) {
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	defer srv.Close()
	tr := &Transport{IdleTimeout: 100 * time.Millisecond}
	resp, err := post(t, tr, context.Background(), srv.URL, "{}")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("idle connection still open")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.idle) != 0 || tr.sweep != nil {
		t.Fatalf("pool not empty after the sweep: %v", tr.idle)
	}
}

func TestBodyLengthComesFromSegments(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %s", r.ContentLength, b)
	}))
	defer srv.Close()
	// http.NewRequest cannot know the length of a *Body.
	req, _ := http.NewRequest(http.MethodPost, srv.URL, NewBody([][]byte{[]byte("ab"), []byte("cd")}))
	resp, err := New().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "4 abcd" {
		t.Fatalf("engine saw %q", got)
	}
}

// Forwarded fields are sent from the client's map, less the skipped ones
// and those the request sets itself.
func TestForwardedFields(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got <- r.Header.Clone()
	}))
	defer srv.Close()
	body := NewBody([][]byte{[]byte("{}")})
	body.Forward(http.Header{"Authorization": {"Bearer x"}, "Content-Type": {"text/plain"}, "Keep-Alive": {"300"}, "X-A": {"1", "2"}},
		map[string]bool{"Keep-Alive": true})
	req, err := http.NewRequest(http.MethodPost, srv.URL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 2
	req.Header = http.Header{"Content-Type": {"application/json"}}
	resp, err := New().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	h := <-got
	if h.Get("Authorization") != "Bearer x" || len(h["X-A"]) != 2 || h.Get("Keep-Alive") != "" ||
		len(h["Content-Type"]) != 1 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("engine got %v", h)
	}
}

// The caller's segments are neither consumed by Read (another
// RoundTripper) nor by Transport's writev: a failover sends the same
// segments again.
func TestBodySegmentsKept(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s", b)
	}))
	defer srv.Close()
	segs := [][]byte{[]byte("ab"), []byte("cd"), []byte("ef")}
	if b, _ := io.ReadAll(NewBody(segs)); string(b) != "abcdef" {
		t.Fatalf("read %q", b)
	}
	tr := New()
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, NewBody(segs))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); got != "abcdef" {
			t.Fatalf("request %d: engine saw %q", i, got)
		}
	}
	if string(bytes.Join(segs, nil)) != "abcdef" || len(segs) != 3 {
		t.Fatalf("segments changed: %q", segs)
	}
}
