package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kthena/kthena/internal/sim/engine"
)

const maxBodyBytes = 64 << 20

// job is a validated request ready for the engine.
type job struct {
	chat      bool
	model     string // as the client named it
	lora      string
	prompt    []int
	maxTokens int
	plan      plan
	stream    bool
	usage     bool // stream_options.include_usage
	raw       completionRequest
	// onPrefilled runs once the prompt's KV exists (the first token):
	// the LMCache save.
	onPrefilled func(context.Context)
}

func (e *Engine) handleChat(w http.ResponseWriter, r *http.Request) { e.serveCompletion(w, r, true) }
func (e *Engine) handleCompletion(w http.ResponseWriter, r *http.Request) {
	e.serveCompletion(w, r, false)
}

func (e *Engine) serveCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	if !e.ready() {
		e.writeError(w, unavailable("model is loading"))
		return
	}
	j, apiErr := e.parseJob(r, chat)
	if apiErr != nil {
		e.writeError(w, apiErr)
		return
	}
	if f := e.failures.pick(j.model); f != nil {
		defer e.countRequest()
		e.writeError(w, f)
		return
	}
	req := &engine.Request{ID: newID(chat), Prompt: j.prompt, Output: j.plan.tokens, Finish: j.plan.finish,
		LoRA: j.lora, MaxTokens: j.maxTokens}
	var kvParams map[string]any
	var afterDone func(engine.Progress)
	if apiErr := e.preparePD(r.Context(), j, req, &kvParams, &afterDone); apiErr != nil {
		e.writeError(w, apiErr)
		return
	}
	stream, err := e.core.Submit(req)
	if err != nil {
		e.writeError(w, badRequest(err.Error()))
		return
	}
	defer e.countRequest() // after the response, so --crash-after N answers N requests
	log := e.log.WithValues("requestId", req.ID)
	log.V(4).Info("request admitted", "promptTokens", len(j.prompt), "outputTokens", len(j.plan.tokens), "lora", j.lora)
	if j.stream {
		e.writeStream(r.Context(), w, j, req, stream, afterDone)
		return
	}
	p, ok := stream.Wait(r.Context())
	if !ok {
		e.core.Cancel(req)
		return
	}
	if afterDone != nil {
		afterDone(p)
	}
	if p.Err != nil {
		e.writeError(w, unavailable(p.Err.Error()))
		return
	}
	if j.onPrefilled != nil {
		// Before answering: the router sends the decode request as soon
		// as the prefill's response arrives, and it must find the KV.
		j.onPrefilled(r.Context())
	}
	if kvParams != nil && req.HoldBlocks {
		kvParams["remote_block_ids"] = p.HeldBlocks
	}
	text := strings.Join(j.plan.pieces[:p.Generated], "")
	u := makeUsage(len(j.prompt), p.Generated, p.CachedTokens)
	resp := map[string]any{"id": req.ID, "created": time.Now().Unix(), "model": j.model, "usage": u}
	if chat {
		resp["object"] = "chat.completion"
		resp["choices"] = []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": text},
			"logprobs": nil, "finish_reason": string(p.Finish)}}
	} else {
		resp["object"] = "text_completion"
		resp["choices"] = []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": string(p.Finish)}}
	}
	if kvParams != nil {
		resp["kv_transfer_params"] = kvParams
	}
	writeJSON(w, http.StatusOK, resp)
}

func newID(chat bool) string {
	id := strings.ReplaceAll(uuid.NewString(), "-", "")
	if chat {
		return "chatcmpl-" + id
	}
	return "cmpl-" + id
}

// parseJob validates a request the way the engines do and plans its output.
func (e *Engine) parseJob(r *http.Request, chat bool) (*job, *apiError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil {
		return nil, badRequest("could not read request body: " + err.Error())
	}
	var req completionRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("Invalid JSON body: " + err.Error())
	}
	j := &job{chat: chat, raw: req, stream: req.Stream}
	if req.Model == nil || *req.Model == "" {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Message: "the 'model' field is required", Param: "model"}
	}
	j.model = *req.Model
	_, lora, ok := e.resolveModel(j.model)
	if !ok {
		return nil, &apiError{Status: http.StatusNotFound, Type: "NotFoundError", Param: "model",
			Message: fmt.Sprintf("The model `%s` does not exist.", j.model)}
	}
	j.lora = lora
	if req.N != nil && *req.N != 1 {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "n",
			Message: fmt.Sprintf("n must be 1 in this simulator, got %d.", *req.N)}
	}
	if req.StreamOptions != nil {
		if !req.Stream {
			return nil, badRequest("Stream options can only be defined when `stream=True`.")
		}
		j.usage = req.StreamOptions.IncludeUsage
	}
	var echoText string
	if chat {
		if len(req.Messages) == 0 {
			return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "messages", Message: "messages must not be empty"}
		}
		msgs, err := toTokenizerMessages(req.Messages)
		if err != nil {
			return nil, badRequest(err.Error())
		}
		var apiErr *apiError
		if j.prompt, echoText, apiErr = e.chatPrompt(&req, msgs); apiErr != nil {
			return nil, apiErr
		}
	} else {
		text, ids, err := parsePrompt(req.Prompt, e.tok)
		if err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "prompt", Message: err.Error()}
		}
		j.prompt, echoText = ids, text
		if len(ids) == 0 {
			return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "prompt", Message: "prompt must not be empty"}
		}
	}
	maxLen := e.cfg.MaxModelLen
	explicit := req.MaxTokens != nil || req.MaxCompletionTokens != nil
	maxTokens := maxLen - len(j.prompt)
	if !chat {
		maxTokens = 16 // the OpenAI completions default
	}
	if req.MaxCompletionTokens != nil {
		maxTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if explicit && maxTokens < 1 {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "max_tokens",
			Message: fmt.Sprintf("max_tokens must be at least 1, got %d.", maxTokens)}
	}
	if len(j.prompt)+max(maxTokens, 1) > maxLen {
		kind := "messages"
		if !chat {
			kind = "prompt"
		}
		return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "messages",
			Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the %s, %d in the completion). Please reduce the length of the %s or completion.",
				maxLen, len(j.prompt)+max(maxTokens, 0), len(j.prompt), kind, max(maxTokens, 0), kind)}
	}
	j.maxTokens = maxTokens
	stops, err := parseStops(req.Stop)
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "stop", Message: err.Error()}
	}
	j.plan = e.planner.plan(echoText, maxTokens, explicit, req.IgnoreEOS, stops)
	return j, nil
}

// resolveModel maps a requested name to the base model or a loaded adapter.
func (e *Engine) resolveModel(name string) (base, lora string, ok bool) {
	for _, n := range e.cfg.ServedModelNames {
		if n == name {
			return n, "", true
		}
	}
	if e.lora.has(name) {
		return e.cfg.ServedModelNames[0], name, true
	}
	return "", "", false
}

// writeStream sends the response as server-sent events, one chunk per
// token, written as each engine step emits it.
func (e *Engine) writeStream(ctx context.Context, w http.ResponseWriter, j *job, req *engine.Request,
	stream *engine.Stream, afterDone func(engine.Progress)) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	c := newChunker(j.chat, req.ID, j.model, time.Now().Unix())
	buf := c.roleChunk(nil)
	sent := 0
	for {
		p, ok := stream.Next(ctx, sent)
		if !ok {
			e.core.Cancel(req)
			return
		}
		if j.onPrefilled != nil && p.Generated > 0 && p.Err == nil {
			go j.onPrefilled(context.WithoutCancel(ctx))
			j.onPrefilled = nil
		}
		if p.Done && afterDone != nil {
			afterDone(p)
		}
		if p.Err != nil && p.Done {
			buf = c.errorChunk(buf, p.Err.Error())
			_, _ = w.Write(buf)
			_ = rc.Flush()
			return
		}
		for ; sent < p.Generated; sent++ {
			finish := ""
			if p.Done && sent == p.Generated-1 {
				finish = string(p.Finish)
			}
			buf = c.tokenChunk(buf, j.plan.pieces[sent], finish)
		}
		if p.Done {
			if j.usage {
				buf = c.usageChunk(buf, makeUsage(len(j.prompt), p.Generated, p.CachedTokens))
			}
			buf = append(buf, "data: [DONE]\n\n"...)
		}
		if _, err := w.Write(buf); err != nil {
			e.core.Cancel(req)
			return
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			e.core.Cancel(req)
			return
		}
		buf = buf[:0]
		if p.Done {
			return
		}
	}
}
