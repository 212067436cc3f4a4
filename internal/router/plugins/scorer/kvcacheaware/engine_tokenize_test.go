package kvcacheaware

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

// parsed is the scheduler's view of body, as the director builds it.
func parsed(t *testing.T, path, body string) *framework.Request {
	r, err := openai.Parse([]byte(body), 64)
	require.NoError(t, err)
	req := &framework.Request{Model: sim.DefaultModel, UpstreamModel: sim.DefaultModel, Path: path, Prompt: r.Prompt,
		PromptJSON: r.PromptJSON([]byte(body)), PromptBytes: r.PromptBytes}
	req.RenderWholePrompt = func() []byte { return r.FlattenPrompt([]byte(body), len(body)) }
	return req
}

// The engine's /tokenize gives the tokens the in-process tokenizer gives
// kthena-sim's requests (chat with the generation prompt, completions),
// and an identical prompt is answered from the cache.
func TestEngineTokenizeEqualsInProcess(t *testing.T) {
	tok, err := tokenizer.New("")
	require.NoError(t, err)
	cfg := sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho}
	f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfg, cfg)
	require.NoError(t, err)
	defer f.Close()
	eps := []*framework.Endpoint{{Key: "a", Address: f.Addrs[0]}, {Key: "b", Address: f.Addrs[1]}}
	et := newEngineTokenizer(5*time.Second, 16, 0, 0)
	cases := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"rules\nline 2"},{"role":"user","content":"  padded 東京 🙂 ` + strings.Repeat("long ", 40) + `"}]}`},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"part one"},{"type":"text","text":" and two"}]}]}`},
		{"/v1/completions", `{"model":"m","prompt":"Once upon a time <|start_header_id|> in 東京, there was\ta tab"}`},
	}
	for _, c := range cases {
		req := parsed(t, c.path, c.body)
		want, err := Tokens(tok, c.path, req.WholePrompt())
		require.NoError(t, err)
		got, err := et.Tokens(context.Background(), req, eps)
		require.NoError(t, err, c.body)
		assert.Equal(t, want, got, c.body)
	}
	asked := et.asked.Load()
	got, err := et.Tokens(context.Background(), parsed(t, cases[0].path, cases[0].body), eps)
	require.NoError(t, err)
	assert.NotEmpty(t, got)
	assert.Equal(t, asked, et.asked.Load(), "an identical prompt is not asked again")
	assert.Equal(t, uint64(1), et.cached.Load())
	assert.Equal(t, uint64(0), et.failed.Load())
}

// A failing or hanging /tokenize is an error within the timeout, never a
// wait for the engine, and is counted.
func TestEngineTokenizeFailures(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"no such model"}`, http.StatusNotFound)
	}))
	defer broken.Close()
	et := newEngineTokenizer(50*time.Millisecond, 16, 0, 0)
	req := parsed(t, "/v1/completions", `{"model":"m","prompt":"hello"}`)

	_, err := et.Tokens(context.Background(), req, []*framework.Endpoint{{Key: "hang", Address: strings.TrimPrefix(hang.URL, "http://")}})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = et.Tokens(context.Background(), req, []*framework.Endpoint{{Key: "broken", Address: strings.TrimPrefix(broken.URL, "http://")}})
	require.ErrorContains(t, err, "404")
	require.ErrorContains(t, err, "no such model")
	_, err = et.Tokens(context.Background(), req, nil)
	require.Error(t, err)
	_, err = et.Tokens(context.Background(), &framework.Request{Path: "/v1/completions"}, nil)
	require.ErrorIs(t, err, errNoPrompt)
	assert.Equal(t, uint64(2), et.failed.Load())
}

// Upstream's tokenizer ports replace the engine's port by engine type.
func TestEngineTokenizeAddress(t *testing.T) {
	et := newEngineTokenizer(time.Second, 1, 8001, 30001)
	assert.Equal(t, "10.0.0.1:8001", et.address(&framework.Endpoint{Address: "10.0.0.1:8000", Engine: "vLLM"}))
	assert.Equal(t, "10.0.0.1:30001", et.address(&framework.Endpoint{Address: "10.0.0.1:30000", Engine: "SGLang"}))
	assert.Equal(t, "10.0.0.1:8000", newEngineTokenizer(time.Second, 1, 0, 0).address(&framework.Endpoint{Address: "10.0.0.1:8000"}))
}

// The first source whose globs match a model wins; models no source
// matches use tokenizerEncoding, else the engine.
func TestTokenizerSelection(t *testing.T) {
	et := newEngineTokenizer(time.Second, 1, 0, 0)
	ts, err := newTokenizers([]TokenizerSource{{Models: []string{"llama-*", "mistral"}, Encoding: "cl100k_base"}, {Models: []string{"qwen*"}, Engine: true}}, "", et)
	require.NoError(t, err)
	assert.NotNil(t, ts.Local("llama-3-8b"))
	assert.NotNil(t, ts.Local("mistral"))
	assert.Same(t, et, ts.For("qwen2.5"))
	assert.Same(t, et, ts.For("other"), "fallback: the engine")

	ts, err = newTokenizers(nil, "o200k_base", et)
	require.NoError(t, err)
	assert.NotNil(t, ts.Local("other"), "fallback: tokenizerEncoding")
}

// The fast reading of a /tokenize answer gives what encoding/json gives,
// and any other shape falls back to it.
func TestDecodeTokens(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want []int
		fast bool
	}{
		{`{"count":3,"max_model_len":8192,"tokens":[128000, 9906,0],"token_strs":null}`, []int{128000, 9906, 0}, true},
		{"{\"tokens\" :\n [ 1 ,\t2 ]}", []int{1, 2}, true},
		{`{"tokens":[]}`, []int{}, true},
		{`{"token_strs":["say \"tokens\": [9]"],"tokens":[5]}`, []int{5}, true},
		{`{"tokens":[1],"tokens":[2]}`, []int{2}, false},
		{`{"tokens":[007]}`, nil, false},
		{`{"tokens":[1.5]}`, nil, false},
		{`{"tokens":[-1]}`, []int{-1}, false},
		{`{"tokens":[1,2`, nil, false},
		{`{"count":0}`, nil, false},
		{`not json`, nil, false},
	} {
		_, fast := scanTokens([]byte(c.raw))
		assert.Equal(t, c.fast, fast, c.raw)
		got, err := decodeTokens([]byte(c.raw))
		if c.want == nil {
			assert.Error(t, err, c.raw)
			continue
		}
		require.NoError(t, err, c.raw)
		assert.Equal(t, c.want, got, c.raw)
	}
}

func FuzzDecodeTokens(f *testing.F) {
	f.Add([]byte(`{"count":2,"tokens":[1,22],"token_strs":null}`))
	f.Add([]byte(`{"tokens" : [ ]}`))
	f.Add([]byte(`{"tokens":[99999999999]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ids, ok := scanTokens(raw)
		if !ok || !json.Valid(raw) {
			_, _ = decodeTokens(raw) // must not panic
			return
		}
		var out tokenizeResponse
		if err := json.Unmarshal(raw, &out); err == nil && out.Tokens != nil {
			if !slices.Equal(ids, out.Tokens) {
				t.Fatalf("%q: fast %v, encoding/json %v", raw, ids, out.Tokens)
			}
		}
	})
}

// A model's own tokenizer files, loaded in process, tokenise requests as
// an engine serving that model (kthena-sim --tokenizer-dir) does: its chat
// template, special tokens and BOS on completions.
func TestModelFilesTokenizeAsTheEngine(t *testing.T) {
	const dir = "../../../../tokenizer/testdata/tiny"
	cfg := sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho, TokenizerDir: dir}
	f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard()}, cfg)
	require.NoError(t, err)
	defer f.Close()
	eps := []*framework.Endpoint{{Key: "a", Address: f.Addrs[0]}}
	ts, err := newTokenizers([]TokenizerSource{{Models: []string{"tiny-*"}, Path: dir}}, "", newEngineTokenizer(5*time.Second, 16, 0, 0))
	require.NoError(t, err)
	local := ts.For("tiny-model")
	require.IsType(t, localTokenizer{}, local)
	engine := newEngineTokenizer(5*time.Second, 16, 0, 0)
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Héllo 東京 🙂, what is 12345?"}]}`},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"one"},{"role":"assistant","content":"two"},{"role":"user","content":"three\nlines\n\nhere"}]}`},
		{"/v1/completions", `{"model":"m","prompt":"def f(x):\n    return x  # code"}`},
	} {
		req := parsed(t, c.path, c.body)
		want, err := engine.Tokens(context.Background(), req, eps)
		require.NoError(t, err, c.body)
		got, err := local.Tokens(context.Background(), req, eps)
		require.NoError(t, err, c.body)
		assert.Equal(t, want, got, c.body)
	}

	_, err = newTokenizers([]TokenizerSource{{Path: t.TempDir()}}, "", nil)
	require.ErrorContains(t, err, "tokenizers[0].path")
	_, err = newTokenizers([]TokenizerSource{{Path: dir, Engine: true}}, "", nil)
	require.ErrorContains(t, err, "exactly one")
}
