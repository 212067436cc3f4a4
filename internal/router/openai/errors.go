package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error is the router's one typed error. Every failure a client sees is an
// Error, rendered by Write as OpenAI-style JSON.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Type is the error type (access log and metric label), such as
	// "request_parsing" or "route_not_found".
	Type string
	// Message says what happened.
	Message string
	// Origin is "router" or "upstream".
	Origin string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

// Errorf builds a router-origin error.
func Errorf(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...), Origin: "router"}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

// Write renders e on w.
func (e *Error) Write(w http.ResponseWriter) {
	b, _ := json.Marshal(errorBody{Error: errorDetail{Message: e.Message, Type: e.Type, Code: e.Status}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(b, '\n'))
}
