package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// server declares a ModelServer selecting app=<name>.
func server(name, model, extra string) string {
	m := ""
	if model != "" {
		m = "\n  model: " + model
	}
	return fmt.Sprintf(`apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: %s, namespace: default}
spec:%s
  inferenceEngine: vLLM
  workloadSelector: {matchLabels: {app: %s}}
  workloadPort: {port: 8000}%s
`, name, m, name, extra)
}

func endpoints(eps map[*fakeEngine]string) string {
	var b strings.Builder
	b.WriteString("kind: Endpoints\nendpoints:\n")
	for e, app := range eps {
		fmt.Fprintf(&b, "- {name: %s, address: %q, labels: {app: %s}}\n", e.name, e.addr(), app)
	}
	return b.String()
}

func docs(ds ...string) string { return strings.Join(ds, "---\n") }

type harness struct {
	t      *testing.T
	r      *Router
	dir    string
	epFile string
	cfg    string
	client *http.Client
}

func start(t *testing.T, file, cfg string) *harness {
	t.Helper()
	return startWith(t, file, cfg, nil)
}

// startWith is start with the options edited by opt (nil: none).
func startWith(t *testing.T, file, cfg string, opt func(*Options)) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, epFile: filepath.Join(dir, "endpoints.yaml"), client: &http.Client{Timeout: 20 * time.Second}}
	if err := os.WriteFile(h.epFile, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{Addr: "127.0.0.1:0", DebugAddr: "127.0.0.1:0", EndpointsFile: h.epFile,
		ScrapeInterval: 30 * time.Millisecond, MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute}
	if cfg != "" {
		h.cfg = filepath.Join(dir, "router.yaml")
		if err := os.WriteFile(h.cfg, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		o.ConfigFile = h.cfg
	}
	if opt != nil {
		opt(&o)
	}
	r, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	eventually(t, "router ready", func() bool { return r.ready() })
	return h
}

// waitScraped waits until every endpoint has been scraped at least twice
// after now, so metrics (and histogram deltas) are current.
func (h *harness) waitScraped(engines ...*fakeEngine) {
	h.t.Helper()
	base := make([]int, len(engines))
	for i, e := range engines {
		base[i] = e.scrapeCount()
	}
	eventually(h.t, "scrapes", func() bool {
		for i, e := range engines {
			if e.scrapeCount() < base[i]+3 {
				return false
			}
		}
		return true
	})
}

type resp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (h *harness) do(path string, body string, hdr map[string]string) resp {
	h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+h.r.Addr()+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, header: res.Header, body: b}
	_ = json.Unmarshal(b, &out.json)
	return out
}

func (h *harness) chat(model string, hdr map[string]string) resp {
	return h.do("/v1/chat/completions", fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"hello"}]}`, model), hdr)
}

func engineOf(r resp) string {
	s, _ := r.json["engine"].(string)
	return s
}

func errMsg(r resp) string {
	e, _ := r.json["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

func (h *harness) writeFile(path, content string) {
	h.t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		h.t.Fatal(err)
	}
}

var _ = bytes.NewReader
