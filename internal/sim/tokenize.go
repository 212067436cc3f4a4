package sim

import (
	"encoding/json"
	"net/http"
)

func (e *Engine) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model               string          `json:"model"`
		Prompt              *string         `json:"prompt"`
		Messages            []chatMessage   `json:"messages"`
		AddGenerationPrompt *bool           `json:"add_generation_prompt"`
		AddSpecialTokens    json.RawMessage `json:"add_special_tokens"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		e.writeError(w, badRequest("Invalid JSON body: "+err.Error()))
		return
	}
	if req.Model != "" {
		if _, _, ok := e.resolveModel(req.Model); !ok {
			e.writeError(w, notFound("The model `"+req.Model+"` does not exist."))
			return
		}
	}
	var tokens []int
	switch {
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
		e.writeError(w, badRequest("either prompt or messages is required"))
		return
	}
	if tokens == nil {
		tokens = []int{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(tokens), "max_model_len": e.cfg.MaxModelLen,
		"tokens": tokens, "token_strs": nil})
}

func (e *Engine) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model  string `json:"model"`
		Tokens []int  `json:"tokens"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		e.writeError(w, badRequest("Invalid JSON body: "+err.Error()))
		return
	}
	if req.Tokens == nil {
		e.writeError(w, badRequest("tokens is required"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"prompt": e.tok.Decode(req.Tokens)})
}
