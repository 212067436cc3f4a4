// Package accesslog writes one entry per inference request, in text or
// JSON, with upstream's field names.
package accesslog

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
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

// Logger writes entries; a nil *Logger discards them.
type Logger struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	buf  []byte
}

// New returns a logger writing format ("text" or "json") to w.
func New(w io.Writer, format string) (*Logger, error) {
	switch format {
	case "text", "":
		return &Logger{w: w}, nil
	case "json":
		return &Logger{w: w, json: true}, nil
	}
	return nil, fmt.Errorf("access log format %q: want text or json", format)
}

// Log writes e.
func (l *Logger) Log(e *Entry) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.json {
		b, err := json.Marshal(e)
		if err != nil {
			return
		}
		_, _ = l.w.Write(append(b, '\n'))
		return
	}
	b := l.buf[:0]
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
		kv("upstream_status_code", strconv.Itoa(e.UpstreamStatusCode))
		kv("upstream_attempts", strconv.Itoa(e.UpstreamAttempts))
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
	b = append(b, '\n')
	l.buf = b
	_, _ = l.w.Write(b)
}
