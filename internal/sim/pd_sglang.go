package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
)

// prepareSGLangPD handles the bootstrap handshake: the router sends the same
// request to both engines with a shared bootstrap_room; the decode engine
// waits on the prefill engine's bootstrap endpoint for that room.
func (e *Engine) prepareSGLangPD(ctx context.Context, j *job, req *engine.Request, after *func(engine.Progress)) *apiError {
	raw := j.raw
	switch e.cfg.KVRole {
	case RolePrefill:
		if raw.BootstrapRoom == nil {
			return &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "bootstrap_room",
				Message: "bootstrap_room is required by an engine in prefill disaggregation mode"}
		}
		roomID := *raw.BootstrapRoom
		// The prefill computes the prompt and one token, and keeps the KV
		// until the decode engine has taken it (or the timeout).
		req.Output, req.Finish, req.HoldBlocks = req.Output[:1], engine.FinishLength, true
		j.plan.tokens, j.plan.pieces = j.plan.tokens[:1], j.plan.pieces[:1]
		rm := e.pd.room(roomID)
		prompt := len(req.Prompt)
		e.pd.mu.Lock()
		e.pd.holds[req.ID] = prompt
		e.pd.mu.Unlock()
		rm.holdID = req.ID
		*after = func(p engine.Progress) {
			if p.Err != nil {
				rm.err = p.Err
				e.releaseHold(req.ID)
			}
			rm.tokens = prompt
			close(rm.done)
			time.AfterFunc(time.Duration(float64(e.cfg.KVTransferTimeout)*e.cfg.TimeScale), func() {
				e.pd.dropRoom(roomID)
				e.releaseHold(req.ID)
			})
		}
	case RoleDecode:
		if raw.BootstrapRoom == nil || raw.BootstrapHost == nil || *raw.BootstrapHost == "" {
			return &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "bootstrap_room",
				Message: "bootstrap_host and bootstrap_room are required by an engine in decode disaggregation mode"}
		}
		port := e.cfg.BootstrapPort
		if raw.BootstrapPort != nil {
			port = *raw.BootstrapPort
		}
		if port == 0 {
			port = 8998 // SGLang's default bootstrap port
		}
		return e.waitBootstrap(ctx, *raw.BootstrapHost, port, *raw.BootstrapRoom, req)
	}
	return nil
}

func (e *Engine) waitBootstrap(ctx context.Context, host string, port int, roomID int64, req *engine.Request) *apiError {
	url := fmt.Sprintf("http://%s/sim/v1/bootstrap/%d", net.JoinHostPort(host, strconv.Itoa(port)), roomID)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return badRequest(err.Error())
	}
	resp, err := e.pd.http.Do(hreq)
	if err != nil {
		e.recordTransferFailure("bootstrap")
		return &apiError{Status: http.StatusBadGateway, Type: "BadGatewayError",
			Message: fmt.Sprintf("bootstrap server %s:%d unreachable for room %d: %v", host, port, roomID, err)}
	}
	defer resp.Body.Close()
	var out struct {
		Tokens int    `json:"num_tokens"`
		Error  string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		e.recordTransferFailure("bootstrap")
		return &apiError{Status: http.StatusBadGateway, Type: "BadGatewayError",
			Message: fmt.Sprintf("bootstrap room %d on %s:%d failed: %s", roomID, host, port, out.Error)}
	}
	if out.Tokens != len(req.Prompt) {
		return badRequest(fmt.Sprintf("bootstrap room %d prefilled %d tokens but this request has %d", roomID, out.Tokens, len(req.Prompt)))
	}
	e.receiveRemotePrefill("bootstrap", req)
	return nil
}

// handleBootstrap blocks until the room's prefill completes or the transfer
// timeout passes.
func (e *Engine) handleBootstrap(w http.ResponseWriter, r *http.Request) {
	roomID, err := strconv.ParseInt(r.PathValue("room"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "room must be an integer"})
		return
	}
	if e.cfg.KVRole != RolePrefill {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "this engine is not in prefill mode"})
		return
	}
	rm := e.pd.room(roomID)
	timeout := time.NewTimer(time.Duration(float64(e.cfg.KVTransferTimeout) * e.cfg.TimeScale))
	defer timeout.Stop()
	select {
	case <-rm.done:
	case <-timeout.C:
		writeJSON(w, http.StatusGatewayTimeout, map[string]string{"error": fmt.Sprintf("no prefill arrived for the room within %s", e.cfg.KVTransferTimeout)})
		return
	case <-r.Context().Done():
		return
	}
	if rm.err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": rm.err.Error()})
		return
	}
	e.pd.dropRoom(roomID)
	e.releaseHold(rm.holdID) // the decode engine takes the KV now
	writeJSON(w, http.StatusOK, map[string]int{"num_tokens": rm.tokens})
}
