package sim

import (
	"encoding/json"
	"net/http"
)

// apiError is an error answered in the engine's own JSON shape.
type apiError struct {
	Status  int
	Type    string
	Message string
	Param   string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Message: msg}
}

func notFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "NotFoundError", Message: msg}
}

func unavailable(msg string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: "ServiceUnavailableError", Message: msg}
}

func internal(msg string) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: "InternalServerError", Message: msg}
}

// errorBody renders the flavour's error JSON. vLLM (since mid-2025) nests
// the fields under "error" as OpenAI does; SGLang keeps the flat
// {"object":"error",...} form.
func errorBody(f Flavor, e *apiError) any {
	var param any
	if e.Param != "" {
		param = e.Param
	}
	fields := map[string]any{"message": e.Message, "type": e.Type, "param": param, "code": e.Status}
	if f == SGLang {
		fields["object"] = "error"
		return fields
	}
	return map[string]any{"error": fields}
}

func (s *Engine) writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(errorBody(s.cfg.Engine, e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
