package director

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/upstream"
)

// hopHeaders are not forwarded (RFC 9110 §7.6.1), Content-Length is
// recomputed, and Expect is already answered: the router has the body.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Accept-Encoding": true, "Host": true, "Expect": true, DecisionRequestHeader: true,
}

// jsonHeader is the head of requests to engines, less the client's fields
// (read only).
var jsonHeader = http.Header{"Content-Type": {"application/json"}}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// attemptError is why one attempt failed.
type attemptError struct {
	status  int // upstream status, 0 for transport errors
	timeout bool
	connect bool
	// midBody: a non-streamed answer failed after it began; nothing
	// reached the client.
	midBody bool
	msg     string
}

// budget is how a ModelServer retries: attempts over n candidates (each
// candidate once by default; 1+retry.attempts cycling over them when
// set), the pause between attempts, and the per-attempt header timeout.
type budget struct {
	attempts          int
	interval, timeout time.Duration
}

func budgetOf(ms *networkingv1alpha1.ModelServer, n int) budget {
	b := budget{attempts: n}
	if tp := ms.Spec.TrafficPolicy; tp != nil {
		if tp.Retry != nil && tp.Retry.Attempts > 0 {
			b.attempts = 1 + int(tp.Retry.Attempts)
			b.interval = 100 * time.Millisecond
			if tp.Retry.RetryInterval != nil {
				b.interval = tp.Retry.RetryInterval.Duration
			}
		}
		if tp.Timeout != nil {
			b.timeout = tp.Timeout.Duration
		}
	}
	return b
}

// pause waits the retry interval before attempt i > 0; false when the
// client went away meanwhile.
func (b budget) pause(ctx context.Context, i int) bool {
	if i == 0 || b.interval <= 0 {
		return true
	}
	t := time.NewTimer(b.interval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

var errBackoffCancelled = openai.Errorf(499, "client_cancelled", "client went away during retry backoff")

// proxy tries the ranked candidates in turn until one answers. pre is told
// of each attempt's endpoint before it is sent; describe renders the
// decision header for the chosen endpoint.
func (d *Director) proxy(c *call, pre func(*framework.Endpoint), describe func(chosen string) string, res *framework.Result,
	byKey map[*framework.Endpoint]*datastore.Endpoint, ms *networkingv1alpha1.ModelServer, segs [][]byte, n int) error {
	b := budgetOf(ms, len(res.Ranked))
	attempts, timeout := b.attempts, b.timeout
	injected := c.parsed.Stream && !c.parsed.IncludeUsage
	var last *attemptError
	ctx := c.r.Context()
	c.upStart = time.Now()
	if c.marks {
		c.stages.UpstreamStart = c.upStart.Sub(c.start)
	}
	for i := 0; i < attempts; i++ {
		if !b.pause(ctx, i) {
			return errBackoffCancelled
		}
		cand := res.Ranked[i%len(res.Ranked)]
		ep := byKey[cand.Endpoint]
		if ep.Removed() && i > 0 {
			continue
		}
		c.entry.SelectedPod = ep.Key
		c.entry.UpstreamAttempts = i + 1
		pre(cand.Endpoint)
		if c.decision {
			c.w.Header().Set(DecisionHeader, describe(ep.Key))
		}
		ae := d.attempt(c, ep, segs, n, timeout, injected)
		if ae == nil {
			d.count("ok")
			return nil
		}
		last = ae
		if ctx.Err() != nil {
			return openai.Errorf(499, "client_cancelled", "client cancelled the request")
		}
		if ae.connect {
			ep.MarkFailed()
		}
		if ae.status >= 400 && ae.status < 500 && ae.status != http.StatusTooManyRequests {
			break // not retriable; already relayed
		}
		if ae.midBody {
			// A non-streamed answer failed mid-body: nothing reached the
			// client, so it is sent again whole, within the migration
			// bound.
			if c.wholeRetries >= d.migration().MaxAttempts {
				break
			}
			c.wholeRetries++
			d.countMigration(c, migRetriedWhole)
		}
		if c.respFrom.IsZero() {
			d.count("failover")
			continue
		}
		if c.stream.on {
			d.count("error")
			return d.migrate(c, ep.Key, ae)
		}
		break
	}
	d.count("error")
	if last == nil {
		return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "no pod left to try")
	}
	if !c.respFrom.IsZero() {
		// Bytes already reached the client; the error is only logged.
		c.entry.ErrorOrigin = "upstream"
		return &openai.Error{Status: c.entry.StatusCode, Type: "upstream_stream", Message: last.msg, Origin: "upstream"}
	}
	status := http.StatusBadGateway
	if last.timeout {
		status = http.StatusGatewayTimeout
	}
	return &openai.Error{Status: status, Type: "upstream_error", Origin: "upstream",
		Message: fmt.Sprintf("model %q: %d attempt(s) failed; last on pod %s: %s", c.parsed.Model, c.entry.UpstreamAttempts, c.entry.SelectedPod, last.msg)}
}

func (d *Director) count(result string) {
	if d.o.Metrics != nil {
		d.o.Metrics.Attempt(result)
	}
}

// target is where one attempt goes.
type target struct {
	// url is parsed per attempt; u (engines) is used as is.
	url string
	u   *url.URL
	rt  http.RoundTripper
	// header fills the outgoing headers; nil forwards the client's
	// (end-to-end ones) as for engines.
	header func(client, out http.Header)
}

// attempt sends the request to one endpoint. It returns nil once a
// response has been relayed (fully or until the client went away).
func (d *Director) attempt(c *call, ep *datastore.Endpoint, segs [][]byte, n int, timeout time.Duration, injected bool) *attemptError {
	release := ep.Acquire()
	defer release()
	return d.send(c.r.Context(), c, d.engineTarget(c, ep), segs, n, timeout, injected)
}

func (d *Director) engineTarget(c *call, ep *datastore.Endpoint) target {
	in := c.r.URL
	return target{u: &url.URL{Scheme: "http", Host: ep.Address, Path: in.Path, RawPath: in.RawPath, RawQuery: in.RawQuery, ForceQuery: in.ForceQuery}, rt: d.o.Transport}
}

// send sends one attempt under parent (the client's context, or one the
// caller may cancel) and relays the response to the client.
func (d *Director) send(parent context.Context, c *call, up target, segs [][]byte, n int, timeout time.Duration, injected bool) *attemptError {
	if m := d.o.Metrics; m != nil {
		m.ActiveUpstream.Inc()
		defer m.ActiveUpstream.Dec()
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	resp, ae := d.roundTrip(ctx, cancel, c, up, segs, n, timeout)
	if ae != nil {
		return ae
	}
	defer resp.Body.Close()
	c.entry.UpstreamStatusCode = resp.StatusCode
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return statusError(resp)
	}
	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	idle := time.AfterFunc(d.o.StreamIdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	var held *[]byte
	if !stream {
		c.stream.on = false // nothing to continue
		if up.header == nil && resp.StatusCode < 300 {
			// An engine's answer is read whole before any of it is
			// written, so that an engine failing mid-body is retried
			// whole: nothing reached the client.
			var complete bool
			var err error
			held, complete, err = d.readHeld(resp.Body, idle)
			defer putHeld(held)
			if err != nil {
				msg := "reading response: " + err.Error()
				if context.Cause(ctx) == errIdle {
					msg = fmt.Sprintf("engine sent nothing for %s", d.o.StreamIdleTimeout)
				}
				return &attemptError{status: resp.StatusCode, midBody: true, timeout: context.Cause(ctx) == errIdle, msg: msg}
			}
			if complete {
				resp.ContentLength = int64(len(*held))
			}
		}
	}
	// From here on the response goes to the client: no more failover.
	h := c.w.Header()
	for k, vs := range resp.Header {
		if !hopHeaders[k] {
			h[k] = vs
		}
	}
	c.respFrom = time.Now()
	if c.marks {
		c.stages.ResponseStart = c.respFrom.Sub(c.start)
	}
	c.entry.StatusCode = resp.StatusCode
	if !stream && resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	c.w.WriteHeader(resp.StatusCode)

	var rerr error
	if stream {
		rerr = d.relayStream(c, resp.Body, idle, injected)
	} else {
		var prefix []byte
		if held != nil {
			prefix = *held
		}
		rerr = d.relayBody(c, prefix, resp.Body, idle)
	}
	if rerr != nil && context.Cause(ctx) == errIdle {
		return &attemptError{status: resp.StatusCode, timeout: true, msg: fmt.Sprintf("engine sent nothing for %s", d.idleFor(c))}
	}
	if rerr != nil && c.r.Context().Err() == nil {
		return &attemptError{status: resp.StatusCode, msg: "relaying response: " + rerr.Error()}
	}
	if resp.StatusCode >= 400 {
		return &attemptError{status: resp.StatusCode, msg: fmt.Sprintf("engine returned %d", resp.StatusCode)}
	}
	return nil
}

// maxHeld bounds the part of a non-streamed answer read before it is
// written; a larger answer is relayed as it comes (and cannot be retried
// once its first bytes left).
const maxHeld = 8 << 20

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 32<<10); return &b }}

func putHeld(b *[]byte) {
	if cap(*b) <= 1<<20 {
		*b = (*b)[:0]
		heldPool.Put(b)
	}
}

// readHeld reads a non-streamed answer into a pooled buffer, at most
// maxHeld bytes; complete says whether it ended there.
func (d *Director) readHeld(body io.Reader, idle *time.Timer) (*[]byte, bool, error) {
	bp := heldPool.Get().(*[]byte)
	b := *bp
	for len(b) < maxHeld {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		nr, err := body.Read(b[len(b):min(cap(b), maxHeld)])
		b = b[:len(b)+nr]
		if nr > 0 {
			idle.Reset(d.o.StreamIdleTimeout)
		}
		if err == io.EOF {
			*bp = b
			return bp, true, nil
		}
		if err != nil {
			*bp = b
			return bp, false, err
		}
	}
	*bp = b
	return bp, false, nil
}

// exchange sends one request whose response the router keeps (a prefill):
// it returns the body of a 2xx response, at most maxExchangeBody bytes.
func (d *Director) exchange(parent context.Context, c *call, up target, segs [][]byte, n int, timeout time.Duration) ([]byte, *attemptError) {
	if m := d.o.Metrics; m != nil {
		m.ActiveUpstream.Inc()
		defer m.ActiveUpstream.Dec()
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	resp, ae := d.roundTrip(ctx, cancel, c, up, segs, n, timeout)
	if ae != nil {
		return nil, ae
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, statusError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxExchangeBody+1))
	if err != nil {
		return nil, &attemptError{status: resp.StatusCode, msg: "reading response: " + err.Error()}
	}
	if len(body) > maxExchangeBody {
		return nil, &attemptError{status: resp.StatusCode, msg: fmt.Sprintf("response larger than %d bytes", maxExchangeBody)}
	}
	return body, nil
}

const maxExchangeBody = 1 << 20

func statusError(resp *http.Response) *attemptError {
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &attemptError{status: resp.StatusCode, msg: fmt.Sprintf("engine returned %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))}
}

// roundTrip sends the request under ctx (whose cancel it is given, for the
// header timeout) and returns the response once its headers arrived.
func (d *Director) roundTrip(ctx context.Context, cancel context.CancelCauseFunc, c *call, up target, segs [][]byte, n int, timeout time.Duration) (*http.Response, *attemptError) {
	var headerTimer *time.Timer
	if timeout > 0 {
		headerTimer = time.AfterFunc(timeout, func() { cancel(errHeaderTimeout) })
	}
	body := upstream.NewBody(segs)
	if c.marks {
		body.StampSent()
	}
	var out *http.Request
	if up.u != nil {
		// An engine's URL is built rather than formatted and parsed again;
		// the literal stays on the stack, WithContext makes the request.
		out = (&http.Request{Method: http.MethodPost, URL: up.u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Body: body, Host: up.u.Host}).WithContext(ctx)
	} else {
		var err error
		if out, err = http.NewRequestWithContext(ctx, http.MethodPost, up.url, body); err != nil {
			return nil, &attemptError{msg: err.Error()}
		}
	}
	out.ContentLength = int64(n)
	if _, ok := up.rt.(*upstream.Transport); ok && up.header == nil {
		// The engine transport writes the client's fields from its map.
		out.Header = jsonHeader
		body.Forward(c.r.Header, hopHeaders)
	} else {
		out.Header = make(http.Header, len(c.r.Header)+1)
		if up.header != nil {
			up.header(c.r.Header, out.Header)
		} else {
			for k, vs := range c.r.Header {
				if !hopHeaders[k] {
					out.Header[k] = vs
				}
			}
		}
		out.Header.Set("Content-Type", "application/json")
	}
	resp, err := up.rt.RoundTrip(out)
	if t := body.Sent(); c.marks && !t.IsZero() {
		c.stages.Sent = t.Sub(c.start)
	}
	if headerTimer != nil && !headerTimer.Stop() && context.Cause(ctx) == errHeaderTimeout {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, &attemptError{timeout: true, msg: fmt.Sprintf("no response headers within the timeout of %s", timeout)}
	}
	if err != nil {
		var ne net.Error
		ae := &attemptError{msg: err.Error()}
		if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
			ae.msg = cause.Error()
		}
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			ae.connect = true
		}
		if errors.As(err, &ne) && ne.Timeout() {
			ae.timeout = true
		}
		return nil, ae
	}
	return resp, nil
}

var (
	errIdle          = errors.New("stream idle timeout")
	errHeaderTimeout = errors.New("timeout")
)

// relayBody writes prefix (the part already read) and copies the rest of
// a non-streamed response, keeping up to 1 MiB of it to read usage from.
func (d *Director) relayBody(c *call, prefix []byte, body io.Reader, idle *time.Timer) error {
	keep := prefix
	if len(prefix) > 0 {
		if _, werr := c.w.Write(prefix); werr != nil {
			return werr
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		nr, err := body.Read(buf)
		if nr > 0 {
			idle.Reset(d.o.StreamIdleTimeout)
			if len(keep)+nr <= 1<<20 {
				keep = append(keep[:len(keep):len(keep)], buf[:nr]...)
			}
			if _, werr := c.w.Write(buf[:nr]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	c.usage = openai.UsageOf(keep)
	return nil
}

var (
	usageKey = []byte(`"usage"`)
	doneLine = []byte("[DONE]")
)

// relayStream relays SSE line by line, flushing whenever the engine has
// nothing more buffered, reading usage from chunks, and dropping the usage
// chunk the router asked for on the client's behalf. A tracked stream
// (c.stream.on) keeps what the client received, ends with an error when
// the engine stops without [DONE] or sends an error event (neither reaches
// the client: the stream migrates), and, while a continuation is relayed,
// has its chunks rewritten into the client's stream.
func (d *Director) relayStream(c *call, body io.Reader, idle *time.Timer, injected bool) error {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	// The lines of one engine read are gathered and written to the client
	// at once when the read is used up (one ResponseWriter.Write per read
	// instead of two per chunk, its data and blank lines), then flushed.
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	out := (*bp)[:0]
	emit := func() error {
		if len(out) == 0 {
			return nil
		}
		_, err := c.w.Write(out)
		out = out[:0]
		return err
	}
	put := func(p []byte) error {
		if len(out)+len(p) > cap(out) {
			if err := emit(); err != nil {
				return err
			}
			if len(p) > cap(out) {
				_, err := c.w.Write(p)
				return err
			}
		}
		out = append(out, p...)
		return nil
	}
	// fail returns err once the lines before it are written, as they were
	// received by the client (a migration continues after them).
	fail := func(err error) error {
		_ = emit()
		return err
	}
	fl, _ := c.w.(http.Flusher)
	st := &c.stream
	skipBlank := false
	partial := false
	for {
		buffered := br.Buffered()
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			fresh := len(line) > buffered // this line needed a read
			wasStarted := st.started
			if st.on && err != nil && err != bufio.ErrBufferFull {
				// A fragment cut by the failure: the client never sees it.
				return fail(streamErr(err))
			}
			drop := false
			if !partial {
				data, ok := openai.SSEData(line)
				switch {
				case st.on && ok:
					if d, drp := st.chunk(c, data, &skipBlank); drp {
						drop = true
					} else if d != nil {
						line = d
					}
					if isErrorEvent(data) {
						return fail(&engineEventError{errorMessage(data)})
					}
				case ok && len(data) > 0 && data[0] == '{' && bytes.Contains(data, usageKey):
					if u := openai.UsageOf(data); u.Found {
						c.usage = u
						if injected && openai.IsUsageOnlyChunk(data) {
							drop, skipBlank = true, true
						}
					}
				case skipBlank && len(bytes.TrimSpace(line)) == 0:
					drop, skipBlank = true, false
				case ok && bytes.Equal(data, doneLine):
					skipBlank = false
				}
			} else if st.on {
				st.overflow = true // a line longer than the reader's buffer
			}
			partial = err == bufio.ErrBufferFull
			if !drop {
				if werr := put(line); werr != nil {
					return werr
				}
			}
			if br.Buffered() == 0 {
				if werr := emit(); werr != nil {
					return werr
				}
				if fl != nil {
					fl.Flush()
				}
			}
			// The idle timeout counts from the engine's last bytes: the
			// timer is reset once per read, not per line (a reset per line
			// was ~7 % of a stream's CPU), and when the first chunk
			// switches to the migration idle timeout.
			if fresh || st.started != wasStarted {
				idle.Reset(d.idleFor(c))
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if werr := emit(); werr != nil {
				return werr
			}
			if fl != nil {
				fl.Flush()
			}
			if st.on && !st.done {
				return errNoDone
			}
			return nil
		}
		if err != nil {
			return fail(err)
		}
	}
}

var errNoDone = errors.New("stream ended without [DONE]")

func streamErr(err error) error {
	if err == io.EOF {
		return errNoDone
	}
	return err
}

// engineEventError is an engine's mid-stream error event.
type engineEventError struct{ msg string }

func (e *engineEventError) Error() string { return "engine error event: " + e.msg }

// chunk handles one data line of a tracked stream: it returns the line to
// write instead (nil: as is) or whether to drop it.
func (s *streamState) chunk(c *call, data []byte, skipBlank *bool) ([]byte, bool) {
	if len(data) == 0 {
		if *skipBlank {
			*skipBlank = false
			return nil, true
		}
		return nil, false
	}
	*skipBlank = false
	if bytes.Equal(data, doneLine) {
		s.done = true
		if k := s.cont; k != nil && k.usage.Found {
			c.usage = k.total()
			if k.includeUsage {
				return append(k.usageChunk(c.usage), "data: [DONE]\n"...), false
			}
		}
		return nil, false
	}
	if data[0] != '{' || isErrorEvent(data) {
		return nil, false
	}
	if k := s.cont; k != nil {
		out := k.rewrite(data, s.chat)
		if out == nil {
			*skipBlank = true
			return nil, true
		}
		s.keep(out)
		s.started = true
		if &out[0] == &data[0] {
			return nil, false
		}
		line := make([]byte, 0, len(out)+8)
		line = append(line, "data: "...)
		line = append(line, out...)
		return append(line, '\n'), false
	}
	if bytes.Contains(data, usageKey) {
		if u := openai.UsageOf(data); u.Found {
			c.usage = u
			if !c.parsed.IncludeUsage && openai.IsUsageOnlyChunk(data) {
				*skipBlank = true
				return nil, true
			}
		}
	}
	s.keep(data)
	s.started = true
	return nil, false
}

// idleFor is how long a stream may stay silent: the migration idle timeout
// once a tracked stream has started, else the router's stream idle
// timeout.
func (d *Director) idleFor(c *call) time.Duration {
	if c.stream.on && c.stream.started && c.migTarget.limit.IdleTimeout > 0 {
		return c.migTarget.limit.IdleTimeout
	}
	return d.o.StreamIdleTimeout
}

// NewTransport returns an http.Transport for hosted providers (TLS, HTTP/2):
// many long-lived connections to a few hosts. Engines use upstream.Transport.
func NewTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
		ExpectContinueTimeout: 0,
	}
}
