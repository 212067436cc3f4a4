package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// hostedAPI is a TLS OpenAI-style provider that records what it received.
type hostedAPI struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []*http.Request
	bod []map[string]any
}

func newHostedAPI(t *testing.T) *hostedAPI {
	h := &hostedAPI{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		h.mu.Lock()
		h.got, h.bod = append(h.got, r), append(h.bod, body)
		h.mu.Unlock()
		if body["stream"] == true {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
			if so, _ := body["stream_options"].(map[string]any); so["include_usage"] == true {
				fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n")
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostedAPI) last(t *testing.T) (*http.Request, map[string]any) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) == 0 {
		t.Fatal("the provider received nothing")
	}
	return h.got[len(h.got)-1], h.bod[len(h.bod)-1]
}

func TestExternalModelProvider(t *testing.T) {
	api := newHostedAPI(t)
	file := docs(fmt.Sprintf(`kind: ExternalModelProvider
metadata: {name: openai}
spec:
  baseURL: %s/v1
  insecureSkipVerify: true
  model: gpt-real
  headers: {OpenAI-Organization: org-1}
  auth: {secretRef: {name: creds, key: token}}
`, api.srv.URL), fmt.Sprintf(`kind: ExternalModelProvider
metadata: {name: claude}
spec:
  providerType: Anthropic
  baseURL: %s/v1
  insecureSkipVerify: true
  auth: {secretRef: {name: creds, key: anthropic}}
`, api.srv.URL), fmt.Sprintf(`kind: ExternalModelProvider
metadata: {name: nokey}
spec:
  baseURL: %s/v1
  auth: {secretRef: {name: missing, key: token}}
`, api.srv.URL), `kind: ExternalModelProvider
metadata: {name: untrusted}
spec: {baseURL: "`+api.srv.URL+`/v1"}
`, `kind: Secret
metadata: {name: creds}
stringData: {token: " sk-test\n", anthropic: ant-key}
`, `kind: ModelRoute
metadata: {name: ext}
spec: {modelName: gpt, rules: [{targetModels: [{externalModelProviderName: openai}]}]}
---
kind: ModelRoute
metadata: {name: ant}
spec: {modelName: claude, rules: [{targetModels: [{externalModelProviderName: claude}]}]}
---
kind: ModelRoute
metadata: {name: nokey}
spec: {modelName: nokey, rules: [{targetModels: [{externalModelProviderName: nokey}]}]}
---
kind: ModelRoute
metadata: {name: untrusted}
spec: {modelName: untrusted, rules: [{targetModels: [{externalModelProviderName: untrusted}]}]}
---
kind: ModelRoute
metadata: {name: ghost}
spec: {modelName: ghost, rules: [{targetModels: [{externalModelProviderName: ghost}]}]}
`)
	h := start(t, file, "")
	client := map[string]string{"Authorization": "Bearer client-secret", "X-Internal": "1"}

	r := h.do("/v1/chat/completions", `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`, client)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"content":"hi"`) {
		t.Fatalf("non-streaming: %d %s", r.status, r.body)
	}
	req, body := api.last(t)
	if req.URL.Path != "/v1/chat/completions" {
		t.Errorf("path %q, want baseURL + /chat/completions", req.URL.Path)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer sk-test" {
		t.Errorf("Authorization %q: want the provider credential, never the client's", got)
	}
	if req.Header.Get("X-Internal") != "" || req.Header.Get("Openai-Organization") != "org-1" {
		t.Errorf("headers: client-only header forwarded or static header missing: %v", req.Header)
	}
	if body["model"] != "gpt-real" {
		t.Errorf("model %v, want the provider's spec.model", body["model"])
	}

	// Streaming without include_usage: the router asks for usage and strips it.
	r = h.do("/v1/chat/completions", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]}`, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "[DONE]") || strings.Contains(string(r.body), `"usage"`) {
		t.Fatalf("streaming: %d %s", r.status, r.body)
	}
	if _, body = api.last(t); body["stream_options"] == nil {
		t.Error("router did not ask the provider for usage")
	}

	r = h.do("/v1/chat/completions", `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`, client)
	req, _ = api.last(t)
	if r.status != http.StatusOK || req.Header.Get("X-Api-Key") != "ant-key" || req.Header.Get("Authorization") != "" {
		t.Fatalf("anthropic: %d, x-api-key %q, authorization %q", r.status, req.Header.Get("X-Api-Key"), req.Header.Get("Authorization"))
	}

	for _, tc := range []struct {
		model string
		want  int
	}{{"nokey", http.StatusServiceUnavailable}, {"ghost", http.StatusNotFound}, {"untrusted", http.StatusBadGateway}} {
		if r := h.do("/v1/chat/completions", `{"model":"`+tc.model+`","messages":[]}`, nil); r.status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.model, r.status, r.body, tc.want)
		}
	}
}
