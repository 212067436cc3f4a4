// Package handlers is the router's HTTP surface: the OpenAI endpoints
// (bodies read once into pooled buffers, size-limited), /v1/models, and
// health and readiness.
package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kthena/kthena/internal/router/auth"
	"github.com/kthena/kthena/internal/router/openai"
)

// Director serves one inference request whose body has been read.
type Director interface {
	Handle(w http.ResponseWriter, r *http.Request, body []byte, start time.Time)
}

// Models lists the model names routes expose.
type Models interface {
	ModelNames() []string
}

// Options configure the handler.
type Options struct {
	Director Director
	Models   Models
	// MaxBodyBytes bounds request bodies (413 above it).
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body (408 beyond it), so a
	// client trickling its body cannot hold a connection and a buffer
	// forever (0: 2 minutes). Responses are not bounded by it.
	BodyTimeout time.Duration
	// Ready reports readiness.
	Ready func() bool
	// Auth returns the authenticator (nil func or result: no
	// authentication).
	Auth func() *auth.Authenticator
}

// Handler is the router's http.Handler.
type Handler struct {
	o        Options
	mux      *http.ServeMux
	pool     sync.Pool
	draining atomic.Bool
}

// New returns the handler.
func New(o Options) *Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 2 * time.Minute
	}
	h := &Handler{o: o, mux: http.NewServeMux()}
	h.pool.New = func() any { return new(bytes.Buffer) }
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
		h.mux.HandleFunc("POST "+p, h.inference)
	}
	h.mux.HandleFunc("GET /v1/models", h.models)
	h.mux.HandleFunc("GET /models", h.models)
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openai.Errorf(http.StatusNotFound, "route_not_found", "no handler for %s %s", r.Method, r.URL.Path).Write(w)
	})
	return h
}

// SetDraining makes /readyz fail so load balancers stop sending traffic,
// and closes each connection after its response so that clients with
// keep-alive connections reconnect, through the load balancer, elsewhere.
func (h *Handler) SetDraining() { h.draining.Store(true) }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() && r.ProtoMajor == 1 {
		// net/http closes the connection after a response with this header.
		w.Header().Set("Connection", "close")
	}
	h.mux.ServeHTTP(w, r)
}

func (h *Handler) ready(w http.ResponseWriter, _ *http.Request) {
	if h.draining.Load() || (h.o.Ready != nil && !h.o.Ready()) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelInfo `json:"data"`
}

type modelInfo struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	a, id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	names := h.o.Models.ModelNames()
	l := modelList{Object: "list", Data: make([]modelInfo, 0, len(names))}
	for _, n := range names {
		if a == nil || a.Allowed(id, n) {
			l.Data = append(l.Data, modelInfo{ID: n, Object: "model", OwnedBy: "kthena"})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(l)
}

// readDeadliner is net/http's response writer: it sets the connection's
// read deadline.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

// authenticate verifies the caller when authentication is on; on failure
// it has written the error.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (*auth.Authenticator, *auth.Identity, bool) {
	if h.o.Auth == nil {
		return nil, nil, true
	}
	a := h.o.Auth()
	if a == nil {
		return nil, nil, true
	}
	id, err := a.Authenticate(r)
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			ae = &auth.Error{Status: http.StatusUnauthorized, Type: "authentication_error", Message: err.Error()}
		}
		if ae.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kthena"`)
		}
		openai.Errorf(ae.Status, ae.Type, "%s", ae.Message).Write(w)
		return a, nil, false
	}
	return a, id, true
}

func (h *Handler) inference(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if _, id, ok := h.authenticate(w, r); !ok {
		return
	} else if id != nil {
		r = r.WithContext(auth.WithIdentity(r.Context(), id))
	}
	if r.ContentLength > h.o.MaxBodyBytes {
		openai.Errorf(http.StatusRequestEntityTooLarge, "request_too_large", "request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, h.o.MaxBodyBytes).Write(w)
		return
	}
	buf := h.pool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 4<<20 { // do not pin huge buffers
			h.pool.Put(buf)
		}
	}()
	if r.ContentLength > 0 {
		// Room for the body plus bytes.MinRead, so ReadFrom sees EOF
		// without doubling the buffer (a 200 KiB body used to cost a 200
		// KiB and a 400 KiB allocation, both cleared and copied).
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	// A deadline for the body only: cleared once it is read, so that long
	// streamed answers are not cut (a server-wide ReadTimeout would be).
	// (An interface assertion rather than http.ResponseController: no
	// allocation per request.)
	rc, deadline := w.(readDeadliner)
	deadline = deadline && rc.SetReadDeadline(time.Now().Add(h.o.BodyTimeout)) == nil
	body := waitForBody(r.Context(), r.Body, r.ContentLength)
	if r.ContentLength < 0 {
		// A chunked body has no declared length to check above: the
		// limit applies as it is read. (net/http stops a body with a
		// length at that length.)
		body = http.MaxBytesReader(w, io.NopCloser(body), h.o.MaxBodyBytes)
	}
	_, err := buf.ReadFrom(body)
	if bw, ok := body.(*bodyWaiter); ok {
		bw.done()
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			w.Header().Set("Connection", "close")
			openai.Errorf(http.StatusRequestTimeout, "request_timeout", "the request body did not arrive within %s", h.o.BodyTimeout).Write(w)
			return
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			openai.Errorf(http.StatusRequestEntityTooLarge, "request_too_large", "request body exceeds the limit of %d bytes", h.o.MaxBodyBytes).Write(w)
			return
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || r.Context().Err() != nil {
			return
		}
		openai.Errorf(http.StatusBadRequest, "request_parsing", "reading request body: %v", err).Write(w)
		return
	}
	h.o.Director.Handle(w, r, buf.Bytes(), start)
}
