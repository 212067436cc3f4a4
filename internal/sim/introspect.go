package sim

import "net/http"

// The /sim/v1 endpoints expose the simulator's own state to tests that run
// engines as processes (the library offers the same through Engine).

func (e *Engine) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.Stats())
}

// handleCachedTokens answers how many tokens of a prompt this engine would
// serve from its prefix cache now: the oracle for prefix-aware routing.
func (e *Engine) handleCachedTokens(w http.ResponseWriter, r *http.Request) {
	tokens, lora, ok := e.promptTokens(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"cached_tokens": e.CachedPrefixTokens(tokens, lora), "prompt_tokens": len(tokens)})
}
