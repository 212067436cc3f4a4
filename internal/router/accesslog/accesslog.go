// Package accesslog writes one entry per inference request, in text or
// JSON, with upstream's field names.
//
// Entries are formatted on the request's goroutine into a shared buffer and
// written by a background goroutine in batches: a write to stdout (a pipe
// to the container runtime) on the request path holds the response until
// it returns (net/http flushes after the handler), costs a syscall per
// request, and serialised every request behind the one whose writer was
// descheduled or blocked on a full pipe.
package accesslog

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Entry is one request's record.
type Entry struct {
	Timestamp   time.Time `json:"timestamp"`
	Method      string    `json:"method"`
	Path        string    `json:"path"`
	Protocol    string    `json:"protocol"`
	StatusCode  int       `json:"status_code"`
	Error       *Error    `json:"error,omitempty"`
	ModelName   string    `json:"model_name,omitempty"`
	ModelRoute  string    `json:"model_route,omitempty"`
	ModelServer string    `json:"model_server,omitempty"`
	SelectedPod string    `json:"selected_pod,omitempty"`
	// PrefillPod is the prefill pod of a disaggregated request (SelectedPod
	// is then its decode pod).
	PrefillPod string `json:"prefill_pod,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	// Tenant is the authenticated caller (the token's tenant claim).
	Tenant             string `json:"tenant,omitempty"`
	BackendType        string `json:"backend_type,omitempty"`
	BackendName        string `json:"backend_name,omitempty"`
	UpstreamModel      string `json:"upstream_model,omitempty"`
	UpstreamStatusCode int    `json:"upstream_status_code,omitempty"`
	UpstreamAttempts   int    `json:"upstream_attempts,omitempty"`
	ErrorOrigin        string `json:"error_origin,omitempty"`
	InputTokens        int64  `json:"input_tokens"`
	OutputTokens       int64  `json:"output_tokens"`
	// Durations in milliseconds.
	DurationTotal              float64 `json:"duration_total"`
	DurationRequestProcessing  float64 `json:"duration_request_processing"`
	DurationUpstreamProcessing float64 `json:"duration_upstream_processing"`
	DurationResponseProcessing float64 `json:"duration_response_processing"`
	// DurationPrefill is the prefill phase of a disaggregated request, part
	// of the upstream processing time.
	DurationPrefill float64 `json:"duration_prefill,omitempty"`
	// DurationHeld is how long the request waited for its ModelServer's
	// first ready pod (a cold start), part of the request processing time.
	DurationHeld float64 `json:"duration_held,omitempty"`
	// DurationQueued is how long the request waited in the fair queue.
	DurationQueued float64 `json:"duration_queued,omitempty"`
	// Stages, when the router records them (--access-log-stages), say
	// where the request's time went inside the router.
	Stages *Stages `json:"stages,omitempty"`
}

// Stages are the moments a request passed each step of the router, as
// offsets from Entry.Timestamp (the handler's start, once net/http has
// read the request head); zero for a step it did not reach. The text
// format writes them in microseconds as
// stages_us=body_read/parsed/routed/scheduled/upstream_start/sent/response_start/end.
type Stages struct {
	BodyRead      time.Duration `json:"body_read"`
	Parsed        time.Duration `json:"parsed"`
	Routed        time.Duration `json:"routed"`
	Scheduled     time.Duration `json:"scheduled"`
	UpstreamStart time.Duration `json:"upstream_start"`
	// Sent: a connection was taken from the pool (or dialled) and the
	// request written to it.
	Sent time.Duration `json:"sent"`
	// ResponseStart: the engine's answer is about to be written to the
	// client (for a non-streamed answer, read whole).
	ResponseStart time.Duration `json:"response_start"`
	// End: the answer was relayed; metrics and this entry come next.
	End time.Duration `json:"end"`
}

// Error is the error field.
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// FlushInterval is how long an entry may wait to be written: entries
// arriving meanwhile go out in the same write.
const FlushInterval = 20 * time.Millisecond

// maxPending bounds the entries waiting for the writer (a stalled stdout);
// beyond it entries are dropped and counted rather than holding requests.
const maxPending = 4 << 20

// Logger writes entries; a nil *Logger discards them.
type Logger struct {
	w    io.Writer
	json bool

	mu      sync.Mutex
	pending []byte // formatted entries not yet written
	closed  bool

	wake    chan struct{} // the first entry of a batch arrived
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

// New returns a logger writing format ("text" or "json") to w from a
// background goroutine; Close writes what is left and stops it.
func New(w io.Writer, format string) (*Logger, error) {
	l := &Logger{w: w, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	switch format {
	case "text", "":
	case "json":
		l.json = true
	default:
		return nil, fmt.Errorf("access log format %q: want text or json", format)
	}
	go l.run()
	return l, nil
}

// Dropped is how many entries were dropped because the writer could not
// keep up (its output blocked).
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Close writes the entries still pending and stops the writer; later
// entries are discarded.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	<-l.done
	return nil
}

// run writes batches: it sleeps until an entry arrives, waits
// FlushInterval for more, and writes them all at once.
func (l *Logger) run() {
	defer close(l.done)
	t := time.NewTimer(FlushInterval)
	t.Stop()
	var spare []byte
	for {
		stopping := false
		select {
		case <-l.wake:
			t.Reset(FlushInterval)
			select {
			case <-t.C:
			case <-l.stop:
				stopping = true
			}
		case <-l.stop:
			stopping = true
		}
		l.mu.Lock()
		b := l.pending
		l.pending = spare[:0]
		l.mu.Unlock()
		if len(b) > 0 {
			_, _ = l.w.Write(b)
		}
		spare = b[:0]
		if cap(spare) > 1<<20 { // do not pin a burst's buffer
			spare = nil
		}
		if stopping {
			return
		}
	}
}

// Log formats e and queues it for the writer.
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	var js []byte
	if l.json {
		var err error
		if js, err = json.Marshal(e); err != nil {
			return
		}
	}
	l.mu.Lock()
	if l.closed || len(l.pending) >= maxPending {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	first := len(l.pending) == 0
	if l.json {
		l.pending = append(append(l.pending, js...), '\n')
	} else {
		l.pending = appendText(l.pending, e)
	}
	l.mu.Unlock()
	if first {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// appendText appends e's text form to b.
func appendText(b []byte, e *Entry) []byte {
	b = append(b, '[')
	b = e.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, "] \""...)
	b = append(b, e.Method...)
	b = append(b, ' ')
	b = append(b, e.Path...)
	b = append(b, ' ')
	b = append(b, e.Protocol...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.StatusCode), 10)
	kv := func(k, v string) {
		if v != "" {
			b = append(b, ' ')
			b = append(b, k...)
			b = append(b, '=')
			b = append(b, v...)
		}
	}
	kv("model_name", e.ModelName)
	kv("model_route", e.ModelRoute)
	kv("model_server", e.ModelServer)
	kv("selected_pod", e.SelectedPod)
	kv("prefill_pod", e.PrefillPod)
	kv("request_id", e.RequestID)
	kv("tenant", e.Tenant)
	kv("backend_type", e.BackendType)
	kv("upstream_model", e.UpstreamModel)
	if e.UpstreamAttempts > 0 {
		b = append(b, " upstream_status_code="...) // appended, not Itoa'd: no string per entry
		b = strconv.AppendInt(b, int64(e.UpstreamStatusCode), 10)
		b = append(b, " upstream_attempts="...)
		b = strconv.AppendInt(b, int64(e.UpstreamAttempts), 10)
	}
	if e.Error != nil {
		kv("error_origin", e.ErrorOrigin)
		kv("error", e.Error.Type+":"+strconv.Quote(e.Error.Message))
	}
	b = append(b, " tokens="...)
	b = strconv.AppendInt(b, e.InputTokens, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, e.OutputTokens, 10)
	b = append(b, " timings="...)
	b = strconv.AppendFloat(b, e.DurationTotal, 'f', 2, 64)
	b = append(b, "ms("...)
	b = strconv.AppendFloat(b, e.DurationRequestProcessing, 'f', 2, 64)
	b = append(b, '+')
	b = strconv.AppendFloat(b, e.DurationUpstreamProcessing, 'f', 2, 64)
	b = append(b, '+')
	b = strconv.AppendFloat(b, e.DurationResponseProcessing, 'f', 2, 64)
	b = append(b, ')')
	if e.DurationPrefill > 0 {
		b = append(b, " prefill="...)
		b = strconv.AppendFloat(b, e.DurationPrefill, 'f', 2, 64)
		b = append(b, "ms"...)
	}
	if e.DurationQueued > 0 {
		b = append(b, " queued="...)
		b = strconv.AppendFloat(b, e.DurationQueued, 'f', 2, 64)
		b = append(b, "ms"...)
	}
	if e.DurationHeld > 0 {
		b = append(b, " held="...)
		b = strconv.AppendFloat(b, e.DurationHeld, 'f', 2, 64)
		b = append(b, "ms"...)
	}
	if s := e.Stages; s != nil {
		b = append(b, " stages_us="...)
		for i, d := range [...]time.Duration{s.BodyRead, s.Parsed, s.Routed, s.Scheduled, s.UpstreamStart, s.Sent, s.ResponseStart, s.End} {
			if i > 0 {
				b = append(b, '/')
			}
			b = strconv.AppendInt(b, d.Microseconds(), 10)
		}
	}
	return append(b, '\n')
}
