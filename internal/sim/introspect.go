package sim

import (
	"encoding/json"
	"net/http"
)

// The /sim/v1 endpoints expose the simulator's own state to tests that run
// engines as processes (the library offers the same through Engine).

func (e *Engine) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, e.Stats())
}

// handleCachedTokens answers how many tokens of a prompt this engine would
// serve from its prefix cache now: the oracle for prefix-aware routing.
func (e *Engine) handleCachedTokens(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model               string        `json:"model"`
		Prompt              *string       `json:"prompt"`
		Messages            []chatMessage `json:"messages"`
		Tokens              []int         `json:"tokens"`
		AddGenerationPrompt *bool         `json:"add_generation_prompt"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		e.writeError(w, badRequest("Invalid JSON body: "+err.Error()))
		return
	}
	lora := ""
	if req.Model != "" {
		_, l, ok := e.resolveModel(req.Model)
		if !ok {
			e.writeError(w, notFound("The model `"+req.Model+"` does not exist."))
			return
		}
		lora = l
	}
	var tokens []int
	switch {
	case req.Tokens != nil:
		tokens = req.Tokens
	case req.Messages != nil:
		msgs, err := toTokenizerMessages(req.Messages)
		if err != nil {
			e.writeError(w, badRequest(err.Error()))
			return
		}
		tokens = e.tok.EncodeChat(msgs, req.AddGenerationPrompt == nil || *req.AddGenerationPrompt)
	case req.Prompt != nil:
		tokens = e.tok.Encode(*req.Prompt)
	default:
		e.writeError(w, badRequest("one of prompt, messages or tokens is required"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"cached_tokens": e.CachedPrefixTokens(tokens, lora), "prompt_tokens": len(tokens)})
}
