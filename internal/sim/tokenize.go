package sim

import (
	"encoding/json"
	"net/http"
)

// promptRequest is the body of /tokenize and /sim/v1/cached_tokens.
type promptRequest struct {
	Model               string          `json:"model"`
	Prompt              *string         `json:"prompt"`
	Messages            []chatMessage   `json:"messages"`
	Tokens              []int           `json:"tokens"` // cached_tokens only
	AddGenerationPrompt *bool           `json:"add_generation_prompt"`
	AddSpecialTokens    json.RawMessage `json:"add_special_tokens"`
}

// promptTokens decodes a promptRequest, resolves its model (and LoRA
// adapter) and tokenizes its prompt; withIDs also takes pre-tokenized
// "tokens". On failure it has written the error.
func (e *Engine) promptTokens(w http.ResponseWriter, r *http.Request, withIDs bool) (tokens []int, lora string, ok bool) {
	var req promptRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		e.writeError(w, badRequest("Invalid JSON body: "+err.Error()))
		return nil, "", false
	}
	if req.Model != "" {
		_, l, found := e.resolveModel(req.Model)
		if !found {
			e.writeError(w, notFound("The model `"+req.Model+"` does not exist."))
			return nil, "", false
		}
		lora = l
	}
	switch {
	case withIDs && req.Tokens != nil:
		tokens = req.Tokens
	case req.Messages != nil:
		msgs, err := toTokenizerMessages(req.Messages)
		if err != nil {
			e.writeError(w, badRequest(err.Error()))
			return nil, "", false
		}
		if tokens, err = e.tok.EncodeChat(msgs, req.AddGenerationPrompt == nil || *req.AddGenerationPrompt); err != nil {
			e.writeError(w, badRequest(err.Error()))
			return nil, "", false
		}
	case req.Prompt != nil:
		// vLLM adds the model's special tokens (BOS) to a prompt unless
		// add_special_tokens is false.
		if string(req.AddSpecialTokens) == "false" {
			tokens = e.tok.Encode(*req.Prompt)
		} else {
			tokens = e.tok.EncodePrompt(*req.Prompt)
		}
	case withIDs:
		e.writeError(w, badRequest("one of prompt, messages or tokens is required"))
		return nil, "", false
	default:
		e.writeError(w, badRequest("either prompt or messages is required"))
		return nil, "", false
	}
	if tokens == nil {
		tokens = []int{}
	}
	return tokens, lora, true
}

func (e *Engine) handleTokenize(w http.ResponseWriter, r *http.Request) {
	tokens, _, ok := e.promptTokens(w, r, false)
	if !ok {
		return
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
