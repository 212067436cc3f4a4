package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// loraRegistry is the set of loaded adapters, oldest first.
type loraRegistry struct {
	max int // max-cpu-loras; 0 = unlimited

	mu    sync.Mutex
	order []string
	paths map[string]string
}

func newLoRARegistry(c Config) *loraRegistry {
	r := &loraRegistry{max: c.MaxCPULoRAs, paths: map[string]string{}}
	for _, m := range c.LoRAModules {
		r.add(m.Name, m.Path)
	}
	return r
}

func (r *loraRegistry) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.paths[name]
	return ok
}

// add loads an adapter, evicting the oldest when max-cpu-loras is reached.
func (r *loraRegistry) add(name, path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.paths[name]; ok {
		return false
	}
	if r.max > 0 && len(r.order) >= r.max {
		delete(r.paths, r.order[0])
		r.order = r.order[1:]
	}
	r.paths[name] = path
	r.order = append(r.order, name)
	return true
}

func (r *loraRegistry) remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.paths[name]; !ok {
		return false
	}
	delete(r.paths, name)
	for i, n := range r.order {
		if n == name {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
	return true
}

func (r *loraRegistry) list() []LoRAModule {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]LoRAModule, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, LoRAModule{Name: n, Path: r.paths[n]})
	}
	return out
}

type loraRequest struct {
	Name string `json:"lora_name"`
	Path string `json:"lora_path"`
}

func (e *Engine) decodeLoRA(w http.ResponseWriter, r *http.Request) (loraRequest, bool) {
	var req loraRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		e.writeError(w, badRequest("Invalid JSON body: "+err.Error()))
		return req, false
	}
	if req.Name == "" {
		e.writeError(w, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "lora_name", Message: "lora_name is required"})
		return req, false
	}
	return req, true
}

func (e *Engine) handleLoadLoRA(w http.ResponseWriter, r *http.Request) {
	req, ok := e.decodeLoRA(w, r)
	if !ok {
		return
	}
	if req.Path == "" {
		e.writeError(w, &apiError{Status: http.StatusBadRequest, Type: "BadRequestError", Param: "lora_path", Message: "lora_path is required"})
		return
	}
	if e.lora.has(req.Name) {
		e.writeError(w, badRequest(fmt.Sprintf("The lora adapter '%s' has already been loaded.", req.Name)))
		return
	}
	// Loading reads the adapter from disk and copies it to the GPU.
	if err := e.core.Sleep(r.Context(), e.cfg.LoRALoadLatency); err != nil {
		return
	}
	if !e.lora.add(req.Name, req.Path) {
		e.writeError(w, badRequest(fmt.Sprintf("The lora adapter '%s' has already been loaded.", req.Name)))
		return
	}
	e.log.Info("loaded LoRA adapter", "lora", req.Name, "path", req.Path)
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "Success: LoRA adapter '%s' added successfully.", req.Name)
}

func (e *Engine) handleUnloadLoRA(w http.ResponseWriter, r *http.Request) {
	req, ok := e.decodeLoRA(w, r)
	if !ok {
		return
	}
	if !e.lora.remove(req.Name) {
		e.writeError(w, notFound(fmt.Sprintf("The lora adapter '%s' cannot be found.", req.Name)))
		return
	}
	e.log.Info("unloaded LoRA adapter", "lora", req.Name)
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "Success: LoRA adapter '%s' removed successfully.", req.Name)
}

func (e *Engine) handleModels(w http.ResponseWriter, _ *http.Request) {
	owner := string(e.cfg.Engine)
	created := e.started.Unix()
	var data []any
	for _, n := range e.cfg.ServedModelNames {
		data = append(data, map[string]any{"id": n, "object": "model", "created": created, "owned_by": owner,
			"root": e.cfg.Model, "parent": nil, "max_model_len": e.cfg.MaxModelLen, "permission": []any{}})
	}
	for _, m := range e.lora.list() {
		data = append(data, map[string]any{"id": m.Name, "object": "model", "created": time.Now().Unix(), "owned_by": owner,
			"root": m.Path, "parent": e.cfg.ServedModelNames[0], "max_model_len": nil, "permission": []any{}})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
