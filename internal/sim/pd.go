package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
)

// pdState is the prefill side of the disaggregation handshakes: KV held for
// vLLM decode engines to pull, and SGLang bootstrap rooms.
type pdState struct {
	mu    sync.Mutex
	holds map[string]int // request ID -> prompt tokens held
	rooms map[int64]*room
	http  *http.Client
}

type room struct {
	done   chan struct{}
	tokens int
	err    error
	holdID string // the prefill request whose KV the room holds
}

func newPDState() *pdState {
	return &pdState{holds: map[string]int{}, rooms: map[int64]*room{}, http: &http.Client{Timeout: 5 * time.Minute}}
}

func (p *pdState) room(id int64) *room {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rooms[id]
	if !ok {
		r = &room{done: make(chan struct{})}
		p.rooms[id] = r
	}
	return r
}

func (p *pdState) dropRoom(id int64) {
	p.mu.Lock()
	delete(p.rooms, id)
	p.mu.Unlock()
}

func (e *Engine) advertiseHost() string {
	if e.cfg.AdvertiseHost != "" {
		return e.cfg.AdvertiseHost
	}
	if h, _, err := net.SplitHostPort(e.Addr()); err == nil && h != "" && h != "0.0.0.0" && h != "::" {
		return h
	}
	if e.cfg.Host != "" && e.cfg.Host != "0.0.0.0" && e.cfg.Host != "::" {
		return e.cfg.Host
	}
	return "127.0.0.1"
}

func (e *Engine) advertisePort() int {
	if _, p, err := net.SplitHostPort(e.Addr()); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	return e.cfg.Port
}

// preparePD applies the disaggregation handshake a request asks for. On a
// prefill engine it makes the request prefill-only and keeps its KV for the
// decode side; on a decode engine it fetches the KV (paying the transfer
// time) so the prompt is not recomputed.
//
// A plain request (no transfer parameters) is served normally in every
// role, as vLLM does: kv_role does not restrict what a vLLM engine serves,
// the parameters of each request do. The router's http and lmcache
// connectors rely on it (max_tokens=1 on the prefill engine, the original
// request on the decode engine). With the lmcache connector a prefill (or
// kv_both) engine saves the prompt's KV to the shared store once computed,
// and a decode (or kv_both) engine loads what the store has first.
func (e *Engine) preparePD(ctx context.Context, j *job, req *engine.Request, kvParams *map[string]any, after *func(engine.Progress)) *apiError {
	if e.lmcacheSaves() {
		prompt, lora := req.Prompt, req.LoRA
		j.onPrefilled = func(ctx context.Context) { e.lmcacheSave(ctx, prompt, lora) }
	}
	if e.cfg.Engine == SGLang {
		return e.prepareSGLangPD(ctx, j, req, after)
	}
	params := j.raw.KVTransferParams
	if params == nil {
		if e.lmcacheLoads() {
			e.lmcacheLoad(ctx, req)
		}
		return nil
	}
	remoteDecode, _ := params["do_remote_decode"].(bool)
	remotePrefill, _ := params["do_remote_prefill"].(bool)
	switch {
	case remoteDecode && remotePrefill:
		return kvParamsError("do_remote_decode and do_remote_prefill are mutually exclusive")
	case remoteDecode:
		if e.cfg.KVRole == RoleDecode {
			return kvParamsError("this engine has kv-role decode and cannot serve a prefill (do_remote_decode)")
		}
		if j.stream {
			return kvParamsError("a prefill request (do_remote_decode) must not stream")
		}
		req.Output, req.Finish, req.HoldBlocks = req.Output[:1], engine.FinishLength, true
		j.plan.tokens, j.plan.pieces = j.plan.tokens[:1], j.plan.pieces[:1]
		*kvParams = map[string]any{"do_remote_prefill": true, "do_remote_decode": false,
			"remote_engine_id": e.id, "remote_host": e.advertiseHost(), "remote_port": e.advertisePort(),
			"remote_request_id": req.ID, "tp_size": e.profile.TensorParallel}
		e.pd.mu.Lock()
		e.pd.holds[req.ID] = len(req.Prompt)
		e.pd.mu.Unlock()
		*after = func(engine.Progress) {
			// vLLM frees unclaimed KV after a timeout
			// (VLLM_NIXL_ABORT_REQUEST_TIMEOUT there).
			time.AfterFunc(time.Duration(float64(e.cfg.KVTransferTimeout)*e.cfg.TimeScale), func() {
				if e.releaseHold(req.ID) && e.nixlm != nil {
					e.nixlm.expired.Inc()
				}
			})
		}
		return nil
	case remotePrefill:
		if e.cfg.KVRole == RolePrefill {
			return kvParamsError("this engine has kv-role prefill and cannot decode a remote prefill (do_remote_prefill)")
		}
		return e.pullKV(ctx, params, req)
	}
	return nil
}

func kvParamsError(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "kv_transfer_params", Message: "invalid kv_transfer_params: " + msg}
}

func (e *Engine) releaseHold(id string) bool {
	e.pd.mu.Lock()
	_, ok := e.pd.holds[id]
	delete(e.pd.holds, id)
	e.pd.mu.Unlock()
	if ok {
		e.core.ReleaseHeld(id)
	}
	return ok
}

type kvPullRequest struct {
	EngineID  string `json:"remote_engine_id"`
	RequestID string `json:"remote_request_id"`
	BlockIDs  []int  `json:"remote_block_ids"`
}

// pullKV is the decode side of vLLM's handshake: read the KV the prefill
// engine holds, then wait the modelled transfer time.
func (e *Engine) pullKV(ctx context.Context, params map[string]any, req *engine.Request) *apiError {
	host, _ := params["remote_host"].(string)
	port, portOK := params["remote_port"].(float64)
	engineID, _ := params["remote_engine_id"].(string)
	requestID, _ := params["remote_request_id"].(string)
	rawBlocks, _ := params["remote_block_ids"].([]any)
	switch {
	case host == "" || !portOK:
		return kvParamsError("remote_host and remote_port are required with do_remote_prefill")
	case engineID == "":
		return kvParamsError("remote_engine_id is required with do_remote_prefill")
	case len(rawBlocks) == 0:
		return kvParamsError("remote_block_ids must list the prefilled blocks")
	}
	pull := kvPullRequest{EngineID: engineID, RequestID: requestID}
	for _, b := range rawBlocks {
		f, ok := b.(float64)
		if !ok {
			return kvParamsError("remote_block_ids must be integers")
		}
		pull.BlockIDs = append(pull.BlockIDs, int(f))
	}
	body, _ := json.Marshal(pull)
	url := fmt.Sprintf("http://%s/sim/v1/kv_pull", net.JoinHostPort(host, strconv.Itoa(int(port))))
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return kvParamsError(err.Error())
	}
	resp, err := e.pd.http.Do(hreq)
	if err != nil {
		return e.kvLoadFailed(req, fmt.Sprintf("KV transfer from %s:%d failed: %v", host, int(port), err))
	}
	defer resp.Body.Close()
	var out struct {
		Tokens int    `json:"num_tokens"`
		Error  string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return e.kvLoadFailed(req, fmt.Sprintf("KV transfer from %s:%d refused: %s", host, int(port), out.Error))
	}
	if out.Tokens != len(req.Prompt) {
		return kvParamsError(fmt.Sprintf("remote KV covers %d tokens but the prompt has %d", out.Tokens, len(req.Prompt)))
	}
	e.receiveRemotePrefill(ConnectorNixl, req)
	return nil
}

// kvLoadFailed applies the KV load failure policy to a pull that failed:
// under recompute the request prefills its prompt here, as vLLM reschedules
// a request whose blocks did not load; under fail it is answered with a 500,
// which a router treats as the pair's fault and retries elsewhere.
func (e *Engine) kvLoadFailed(req *engine.Request, msg string) *apiError {
	e.recordTransferFailure(ConnectorNixl)
	if e.cfg.KVLoadFailurePolicy == KVLoadFail {
		return &apiError{Status: http.StatusInternalServerError, Type: "InternalServerError", Message: msg}
	}
	e.log.V(1).Info("KV load failed; recomputing the prompt", "request", req.ID, "err", msg)
	return nil
}

// receiveRemotePrefill makes req a request whose prompt KV comes from a
// prefill engine. Only the blocks the local prefix cache lacks cross the
// wire (vLLM's decode side matches its own cache first); the request waits
// for them in the queue, as vLLM's waiting-for-remote-KV state, while the
// running batch keeps decoding.
func (e *Engine) receiveRemotePrefill(connector string, req *engine.Request) {
	n := len(req.Prompt) - e.core.CachedPrefixTokens(req.Prompt, req.LoRA)
	transfer := e.profile.KVTransferTime(n)
	req.RemotePrefill, req.ReadyAfter = true, transfer
	e.recordTransfer(connector, n, transfer)
}

// handleKVPull is the prefill side: hand over held KV once.
func (e *Engine) handleKVPull(w http.ResponseWriter, r *http.Request) {
	var req kvPullRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad pull request: " + err.Error()})
		return
	}
	if req.EngineID != e.id {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "engine id " + req.EngineID + " is not this engine"})
		return
	}
	e.pd.mu.Lock()
	tokens, ok := e.pd.holds[req.RequestID]
	e.pd.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no KV held for request " + req.RequestID + " (expired or already pulled)"})
		return
	}
	e.releaseHold(req.RequestID)
	writeJSON(w, http.StatusOK, map[string]int{"num_tokens": tokens})
}
