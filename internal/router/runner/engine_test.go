package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeEngine is a small vLLM-like engine over a real socket.
type fakeEngine struct {
	name string
	srv  *httptest.Server

	mu        sync.Mutex
	bodies    []map[string]any
	waiting   float64
	kv        float64
	ttft      float64 // seconds per request, reported through histograms
	models    []string
	failFirst int // fail this many inference requests with 500
	status    int // if set, every inference request returns it
	hang      bool
	scrapes   int
	// respond, when set, may answer an inference request itself (true).
	respond func(w http.ResponseWriter, body map[string]any) bool

	served    atomic.Int64
	cancelled chan struct{}
}

func newEngine(t *testing.T, name string) *fakeEngine {
	e := &fakeEngine{name: name, models: []string{"base"}, cancelled: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.scrapes++
		n := float64(e.scrapes)
		fmt.Fprintf(w, "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} %g\n", e.waiting)
		fmt.Fprintf(w, "vllm:num_requests_running{model_name=\"m\"} 0\nvllm:kv_cache_usage_perc{model_name=\"m\"} %g\n", e.kv)
		fmt.Fprintf(w, "vllm:time_to_first_token_seconds_sum{model_name=\"m\"} %g\nvllm:time_to_first_token_seconds_count{model_name=\"m\"} %g\n", e.ttft*n, n)
		fmt.Fprintf(w, "vllm:inter_token_latency_seconds_sum{model_name=\"m\"} %g\nvllm:inter_token_latency_seconds_count{model_name=\"m\"} %g\n", e.ttft/10*n, n)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		var data []map[string]string
		for _, m := range e.models {
			data = append(data, map[string]string{"id": m, "object": "model"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	})
	infer := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		e.mu.Lock()
		e.bodies = append(e.bodies, body)
		fail := e.failFirst > 0
		if fail {
			e.failFirst--
		}
		status, hang, respond := e.status, e.hang, e.respond
		e.mu.Unlock()
		if hang {
			<-r.Context().Done()
			e.cancelled <- struct{}{}
			return
		}
		if fail {
			http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
			return
		}
		if status != 0 {
			http.Error(w, `{"error":"status"}`, status)
			return
		}
		e.served.Add(1)
		if respond != nil && respond(w, body) {
			return
		}
		model, _ := body["model"].(string)
		if body["stream"] == true {
			w.Header().Set("Content-Type", "text/event-stream")
			fl := w.(http.Flusher)
			for i := 0; i < 3; i++ {
				fmt.Fprintf(w, "data: {\"id\":\"c\",\"model\":%q,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s-%d \"}}],\"usage\":null}\n\n", model, e.name, i)
				fl.Flush()
			}
			if so, ok := body["stream_options"].(map[string]any); ok && so["include_usage"] == true {
				fmt.Fprint(w, "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n")
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":%q,"engine":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`, model, e.name)
	}
	mux.HandleFunc("POST /v1/chat/completions", infer)
	mux.HandleFunc("POST /v1/completions", infer)
	mux.HandleFunc("POST /v1/embeddings", infer)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fakeEngine) addr() string { return strings.TrimPrefix(e.srv.URL, "http://") }

func (e *fakeEngine) set(f func(e *fakeEngine)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

func (e *fakeEngine) lastBody() map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.bodies) == 0 {
		return nil
	}
	return e.bodies[len(e.bodies)-1]
}

func (e *fakeEngine) scrapeCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.scrapes
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
