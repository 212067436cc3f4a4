package runner

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func TestErrorStatuses(t *testing.T) {
	good, bad, slow := newEngine(t, "good"), newEngine(t, "bad"), newEngine(t, "slow")
	bad.set(func(e *fakeEngine) { e.status = 500 })
	slow.set(func(e *fakeEngine) { e.hang = true })
	// An address nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()
	routes := `kind: ModelRoute
metadata: {name: ok}
spec: {modelName: ok, rules: [{targetModels: [{modelServerName: sgood}]}]}
---
kind: ModelRoute
metadata: {name: empty}
spec: {modelName: empty, rules: [{targetModels: [{modelServerName: snone}]}]}
---
kind: ModelRoute
metadata: {name: bad}
spec: {modelName: bad, rules: [{targetModels: [{modelServerName: sbad}]}]}
---
kind: ModelRoute
metadata: {name: slow}
spec: {modelName: slow, rules: [{targetModels: [{modelServerName: sslow}]}]}
---
kind: ModelRoute
metadata: {name: dead}
spec: {modelName: dead, rules: [{targetModels: [{modelServerName: sdead}]}]}
---
kind: ModelRoute
metadata: {name: ghost}
spec: {modelName: ghost, rules: [{targetModels: [{modelServerName: missing}]}]}
---
kind: ModelRoute
metadata: {name: hdr}
spec: {modelName: hdr, rules: [{modelMatch: {headers: {x: {exact: "y"}}}, targetModels: [{modelServerName: sgood}]}]}
`
	file := docs(server("sgood", "", ""), server("snone", "", ""), server("sbad", "", ""),
		server("sslow", "", "\n  trafficPolicy: {timeout: 200ms}"), server("sdead", "", ""), routes,
		endpoints(map[*fakeEngine]string{good: "sgood", bad: "sbad", slow: "sslow"})+
			"- {name: dead, address: \""+deadAddr+"\", labels: {app: sdead}}\n")
	h := start(t, file, "")
	cases := []struct {
		name, body string
		hdr        map[string]string
		status     int
		msg        string
	}{
		{"ok", `{"model":"ok"}`, nil, 200, ""},
		{"bad json", `{"model":`, nil, 400, "not valid JSON"},
		{"missing model", `{"messages":[]}`, nil, 400, `no "model"`},
		{"unknown model", `{"model":"nope"}`, nil, 404, `model "nope" not found`},
		{"no rule matched", `{"model":"hdr"}`, nil, 404, "no rule"},
		{"missing model server", `{"model":"ghost"}`, nil, 404, "ModelServer default/missing"},
		{"no pods", `{"model":"empty"}`, nil, 503, "no ready pods"},
		{"engine error", `{"model":"bad"}`, nil, 502, "engine returned 500"},
		{"timeout", `{"model":"slow"}`, nil, 504, "timeout of 200ms"},
		{"dead pod excluded by scraper", `{"model":"dead"}`, nil, 503, "are failing"},
		{"too large", `{"model":"ok","prompt":"` + strings.Repeat("x", 2<<20) + `"}`, nil, 413, "exceeds the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("/v1/chat/completions", tc.body, tc.hdr)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.msg != "" {
				e, _ := r.json["error"].(map[string]any)
				if e == nil || !strings.Contains(errMsg(r), tc.msg) || e["code"].(float64) != float64(tc.status) {
					t.Fatalf("error body %s, want message containing %q", r.body, tc.msg)
				}
			}
		})
	}
	// A chunked body has no length to check up front: the limit applies as
	// it is read.
	for _, tc := range []struct {
		size, status int
	}{{100, 200}, {2 << 20, 413}} {
		body := `{"model":"ok","prompt":"` + strings.Repeat("x", tc.size) + `"}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+h.r.Addr()+"/v1/chat/completions", io.MultiReader(strings.NewReader(body)))
		req.ContentLength = -1 // sent chunked
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status {
			t.Fatalf("chunked body of %d bytes: status %d, want %d: %s", len(body), res.StatusCode, tc.status, b)
		}
	}
}
