// Package upstream is the router's HTTP/1.1 client for inference engines.
//
// net/http's Transport runs a reader and a writer goroutine per connection
// and hands every request and response across them; on a small machine
// those hand-offs (and the thread wake-ups behind them) cost more than the
// rest of the proxy path. Transport writes the request and reads the
// response on the calling goroutine, sends the header and a segmented body
// in one writev, and keeps idle connections in a LIFO pool per address.
// Parsing stays with net/http (http.ReadResponse).
package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transport is an http.RoundTripper for plain-HTTP/1.1 engines. It is safe
// for concurrent use.
type Transport struct {
	// Dialer opens connections; nil uses a 5 s connect timeout.
	Dialer *net.Dialer
	// MaxIdlePerHost bounds the idle connections kept per address
	// (0: 1024).
	MaxIdlePerHost int
	// IdleTimeout drops connections idle for longer (0: 90 s). Engines
	// close idle connections on their own (uvicorn after 5 s); those are
	// detected before reuse.
	IdleTimeout time.Duration

	mu    sync.Mutex
	idle  map[string][]*conn
	sweep *time.Timer // closes expired idle connections (pods that left)
	dials int         // for tests: connections opened
}

// New returns a Transport with the defaults.
func New() *Transport { return &Transport{} }

// conn is one engine connection.
type conn struct {
	net.Conn
	br       *bufio.Reader
	hdr      []byte      // reused request-head buffer
	bufs     net.Buffers // reused writev vector
	addr     string
	idleFrom time.Time
}

// Body is a request body made of segments, sent to the socket as they are
// (no copy into a buffer). Other RoundTrippers read it as an io.Reader.
type Body struct {
	segs [][]byte
	i    int
	// owned: segs is a copy that Read may consume (made on the first
	// Read: Transport only reads segs).
	owned bool
	// stamp asks Transport to note in sent when the request was written
	// (the router's stage timings); off, no clock is read.
	stamp bool
	sent  time.Time
	// fwd are more header fields to send, less those in skip or set by
	// the request itself (see Forward).
	fwd  http.Header
	skip map[string]bool
}

// Forward makes Transport also send h's fields, except those in skip and
// those the request's own Header sets: a proxy forwards its client's
// headers without copying them into a new map per request. Other
// RoundTrippers ignore it.
func (b *Body) Forward(h http.Header, skip map[string]bool) { b.fwd, b.skip = h, skip }

// StampSent makes Transport record when the request has been written (a
// connection taken or dialled, head and body sent); read it with Sent.
func (b *Body) StampSent() { b.stamp = true }

// Sent is when Transport finished writing the request (zero: not
// recorded or not sent).
func (b *Body) Sent() time.Time { return b.sent }

// NewBody returns a body of the given segments; the slice is not modified.
func NewBody(segs [][]byte) *Body { return &Body{segs: segs} }

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if !b.owned {
		b.segs, b.owned = slices.Clone(b.segs[b.i:]), true
		b.i = 0
	}
	n := 0
	for n < len(p) && b.i < len(b.segs) {
		c := copy(p[n:], b.segs[b.i])
		n += c
		b.segs[b.i] = b.segs[b.i][c:]
		if len(b.segs[b.i]) == 0 {
			b.i++
		}
	}
	if n == 0 && b.i >= len(b.segs) {
		return 0, io.EOF
	}
	return n, nil
}

// Close implements io.Closer.
func (b *Body) Close() error { return nil }

// rest is what has not been read yet.
func (b *Body) rest() [][]byte { return b.segs[b.i:] }

// RoundTrip sends req on a pooled or new connection. A reused connection
// that turns out to be closed by the engine before answering is replaced
// once by a new one when the body can be sent again.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return nil, fmt.Errorf("upstream: unsupported scheme %q (engines are plain HTTP)", req.URL.Scheme)
	}
	ctx := req.Context()
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	var segs [][]byte
	var sent *time.Time
	var fwd *Body
	length := req.ContentLength
	replayable := req.Body == nil || req.Body == http.NoBody
	if b, ok := req.Body.(*Body); ok {
		if b.stamp {
			sent = &b.sent
		}
		if b.fwd != nil {
			fwd = b
		}
		segs = b.rest() // only read: writeRequest copies the headers into its vector
		replayable = true
		length = 0
		for _, s := range segs {
			length += int64(len(s))
		}
	}
	for try := 0; ; try++ {
		c, reused, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req, segs, length, sent, fwd)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var stale *staleError
		if errors.As(err, &stale) && reused && replayable && try == 0 {
			continue
		}
		return nil, err
	}
}

// staleError is a failure before the engine sent any byte of a response.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// exchange writes the request and reads the response head on c. On error
// c is closed.
func (t *Transport) exchange(ctx context.Context, c *conn, req *http.Request, segs [][]byte, length int64, sent *time.Time, fwd *Body) (*http.Response, error) {
	// Closing (not a deadline) tells the engine at once to stop working.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.Close()
		return nil, err
	}
	if err := c.writeRequest(req, segs, length, fwd); err != nil {
		return fail(&staleError{err})
	}
	if sent != nil {
		*sent = time.Now()
	}
	// Waiting for the first byte tells "closed before answering" apart
	// from a broken response.
	if _, err := c.br.Peek(1); err != nil {
		return fail(&staleError{err})
	}
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		// Interim responses (100 Continue, 103 Early Hints) precede the
		// real one.
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	resp.Body = &responseBody{rc: resp.Body, c: c, t: t, stop: stop, reuse: !resp.Close}
	return resp, nil
}

// appendFields appends the header lines of hdr, less the fields in skip
// or in set and those Transport writes itself.
func appendFields(h []byte, hdr http.Header, skip map[string]bool, set http.Header) []byte {
	for k, vs := range hdr {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" || skip[k] {
			continue
		}
		if _, ok := set[k]; ok {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue // never let a value split the head
			}
			h = append(h, k...)
			h = append(h, ": "...)
			h = append(h, v...)
			h = append(h, "\r\n"...)
		}
	}
	return h
}

// writeRequest sends the head and body: one writev for a segmented or
// empty body. length is the body's length (-1 or 0 with a body: unknown).
func (c *conn) writeRequest(req *http.Request, segs [][]byte, length int64, fwd *Body) error {
	h := c.hdr[:0]
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	h = append(h, method...)
	h = append(h, ' ')
	h = append(h, req.URL.RequestURI()...)
	h = append(h, " HTTP/1.1\r\nHost: "...)
	if req.Host != "" {
		h = append(h, req.Host...)
	} else {
		h = append(h, req.URL.Host...)
	}
	h = append(h, "\r\n"...)
	chunked := false
	switch {
	case segs != nil || length > 0:
		h = append(h, "Content-Length: "...)
		h = strconv.AppendInt(h, length, 10)
		h = append(h, "\r\n"...)
	case req.Body != nil && req.Body != http.NoBody:
		chunked = true
		h = append(h, "Transfer-Encoding: chunked\r\n"...)
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		h = append(h, "Content-Length: 0\r\n"...)
	}
	h = appendFields(h, req.Header, nil, nil)
	if fwd != nil {
		h = appendFields(h, fwd.fwd, fwd.skip, req.Header)
	}
	h = append(h, "\r\n"...)
	c.hdr = h
	switch {
	case segs != nil:
		// WriteTo consumes the vector; the connection keeps its array,
		// cleared after the write so that it pins no request body.
		full := append(append(c.bufs[:0], h), segs...)
		c.bufs = full
		_, err := c.bufs.WriteTo(c.Conn)
		clear(full)
		c.bufs = full[:0]
		return err
	case chunked:
		if _, err := c.Write(h); err != nil {
			return err
		}
		cw := httputil.NewChunkedWriter(c.Conn)
		if _, err := io.Copy(cw, req.Body); err != nil {
			return err
		}
		if err := cw.Close(); err != nil {
			return err
		}
		_, err := io.WriteString(c.Conn, "\r\n")
		return err
	default:
		if _, err := c.Write(h); err != nil {
			return err
		}
		if req.Body != nil && req.Body != http.NoBody {
			_, err := io.CopyN(c.Conn, req.Body, length)
			return err
		}
		return nil
	}
}

// responseBody returns the connection to the pool when the response has
// been read to the end, and closes it otherwise.
type responseBody struct {
	rc    io.ReadCloser
	c     *conn
	t     *Transport
	stop  func() bool
	reuse bool
	done  bool
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(b.reuse)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *responseBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *responseBody) finish(reuse bool) {
	b.done = true
	// stop reports false when cancellation already closed the connection.
	if b.stop() && reuse && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	_ = b.c.Close()
}

// get returns an idle connection to addr that is still open, or dials.
func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout == 0 {
		return 90 * time.Second
	}
	return t.IdleTimeout
}

// recentIdle is how long a pooled connection is reused without checking
// that the engine kept it open (a variable for tests).
var recentIdle = time.Second

func (t *Transport) get(ctx context.Context, addr string) (*conn, bool, error) {
	timeout := t.idleTimeout()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.dials++
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		// A connection back in the pool for less than recentIdle was
		// answering a moment ago: engines close idle connections after
		// seconds (uvicorn: 5 s), so the peek (a syscall and an
		// allocation per request on a busy router) is kept for the
		// others; one closed meanwhile anyway (an engine restarting) is
		// replayed on a new connection as before.
		idle := time.Since(c.idleFrom)
		if idle < timeout && (idle < recentIdle || alive(c.Conn)) {
			return c, true, nil
		}
		_ = c.Close()
	}
	d := t.Dialer
	if d == nil {
		d = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &conn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), addr: addr}, false, nil
}

func (t *Transport) put(c *conn) {
	limit := t.MaxIdlePerHost
	if limit == 0 {
		limit = 1024
	}
	c.idleFrom = time.Now()
	t.mu.Lock()
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	if len(t.idle[c.addr]) < limit {
		t.idle[c.addr] = append(t.idle[c.addr], c)
		c = nil
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.idleTimeout(), t.sweepIdle)
		}
	}
	t.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// sweepIdle closes connections idle for longer than the timeout, so that
// those to pods that left do not stay open, and runs again while any
// connection is pooled.
func (t *Transport) sweepIdle() {
	timeout := t.idleTimeout()
	var expired []*conn
	t.mu.Lock()
	for addr, list := range t.idle {
		// The list is in the order connections went idle.
		n := 0
		for n < len(list) && time.Since(list[n].idleFrom) >= timeout {
			n++
		}
		expired = append(expired, list[:n]...)
		if n == len(list) {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = append(list[:0], list[n:]...)
		}
	}
	if len(t.idle) > 0 {
		t.sweep.Reset(timeout / 2)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		_ = c.Close()
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.Close()
		}
	}
}
