package kvcacheaware

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"k8s.io/utils/lru"

	"github.com/kthena/kthena/internal/router/framework"
)

// engineTokenizer asks the engines themselves how they tokenise a request
// (vLLM's and kthena-sim's POST /tokenize), so it is right for any model
// without its tokenizer files. It costs a round trip to an engine per
// request the index can score; identical prompts are answered from a cache.
type engineTokenizer struct {
	client  *http.Client
	timeout time.Duration
	// vllmPort and sglangPort replace the endpoint's port when set
	// (upstream's vllmTokenizerPort and sglangTokenizerPort).
	vllmPort, sglangPort int
	cache                *lru.Cache // xxhash of (model, path kind, prompt JSON) -> []int
	next                 atomic.Uint64

	asked, cached, failed atomic.Uint64
}

func newEngineTokenizer(timeout time.Duration, cacheEntries, vllmPort, sglangPort int) *engineTokenizer {
	return &engineTokenizer{
		client: &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}},
		timeout: timeout, vllmPort: vllmPort, sglangPort: sglangPort,
		cache: lru.New(cacheEntries),
	}
}

// tokenizeRequest is the body of /tokenize: messages with the generation
// prompt for chat requests (as the engine renders them before prefill), the
// prompt otherwise (special tokens added, as for a completion).
type tokenizeRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages,omitempty"`
	Prompt              json.RawMessage `json:"prompt,omitempty"`
	AddGenerationPrompt *bool           `json:"add_generation_prompt,omitempty"`
}

type tokenizeResponse struct {
	Tokens []int `json:"tokens"`
}

// Tokens returns the request's token ids as one of eps tokenises them.
func (t *engineTokenizer) Tokens(ctx context.Context, req *framework.Request, eps []*framework.Endpoint) ([]int, error) {
	if len(req.PromptJSON) == 0 {
		return nil, errNoPrompt
	}
	chat := isChat(req.Path)
	key := xxhash.New()
	_, _ = key.WriteString(req.UpstreamModel)
	_, _ = key.Write([]byte{0, boolByte(chat)})
	_, _ = key.Write(req.PromptJSON)
	sum := key.Sum64()
	if v, ok := t.cache.Get(sum); ok {
		t.cached.Add(1)
		return v.([]int), nil
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("no engine to ask")
	}
	ep := eps[t.next.Add(1)%uint64(len(eps))]
	body := tokenizeRequest{Model: req.UpstreamModel}
	if chat {
		yes := true
		body.Messages, body.AddGenerationPrompt = req.PromptJSON, &yes
	} else {
		body.Prompt = req.PromptJSON
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+t.address(ep)+"/tokenize", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	t.asked.Add(1)
	resp, err := t.client.Do(hr)
	if err != nil {
		t.failed.Add(1)
		return nil, fmt.Errorf("tokenize at %s: %w", ep.Key, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.failed.Add(1)
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("tokenize at %s: %s: %s", ep.Key, resp.Status, strings.TrimSpace(string(msg)))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenizeResponse))
	if err == nil {
		var ids []int
		if ids, err = decodeTokens(raw); err == nil {
			t.cache.Add(sum, ids)
			return ids, nil
		}
	}
	t.failed.Add(1)
	return nil, fmt.Errorf("tokenize at %s: %w", ep.Key, err)
}

// maxTokenizeResponse bounds a /tokenize answer (a million tokens).
const maxTokenizeResponse = 16 << 20

// decodeTokens reads the "tokens" of a /tokenize answer. A long prompt's
// answer is tens of thousands of integers, which encoding/json decodes at
// about 100 ns each (0.7 ms for 7,200 tokens, as much as the round trip):
// the common shape (a top-level "tokens" array of plain integers) is read
// directly, anything else by encoding/json.
func decodeTokens(raw []byte) ([]int, error) {
	if ids, ok := scanTokens(raw); ok {
		return ids, nil
	}
	var out tokenizeResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out.Tokens == nil {
		return nil, fmt.Errorf(`answer has no "tokens"`)
	}
	return out.Tokens, nil
}

// scanTokens finds the top-level `"tokens":[...]` of an answer and parses
// its integers; ok is false for any other shape (the caller then decodes
// the whole answer). The key cannot occur inside a string value, where its
// quotes would be escaped; an answer holding it twice is left to the
// decoder.
func scanTokens(raw []byte) (ids []int, ok bool) {
	key := []byte(`"tokens"`)
	at := bytes.Index(raw, key)
	if at <= 0 || raw[at-1] == '\\' || bytes.Contains(raw[at+len(key):], key) {
		return nil, false
	}
	i := skipSpace(raw, at+len(key))
	if i >= len(raw) || raw[i] != ':' {
		return nil, false
	}
	if i = skipSpace(raw, i+1); i >= len(raw) || raw[i] != '[' {
		return nil, false
	}
	ids = make([]int, 0, 256)
	if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == ']' {
		return ids, true
	}
	for i < len(raw) {
		n, digits := 0, 0
		for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9' && digits < 10; i, digits = i+1, digits+1 {
			n = n*10 + int(raw[i]-'0')
		}
		if digits == 0 || (digits > 1 && raw[i-digits] == '0') {
			return nil, false // not a plain non-negative integer
		}
		ids = append(ids, n)
		if i = skipSpace(raw, i); i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case ',':
			i = skipSpace(raw, i+1)
		case ']':
			return ids, true
		default:
			return nil, false
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// counters are the calls made, answered from the cache, and failed.
func (t *engineTokenizer) counters() map[string]int64 {
	return map[string]int64{"engineTokenizeCalls": int64(t.asked.Load()), "engineTokenizeCached": int64(t.cached.Load()),
		"engineTokenizeFailed": int64(t.failed.Load())}
}

// address is where ep's tokenizer listens: the engine's own address unless
// a tokenizer port is configured for its engine type.
func (t *engineTokenizer) address(ep *framework.Endpoint) string {
	port := t.vllmPort
	if strings.EqualFold(ep.Engine, "sglang") {
		port = t.sglangPort
	}
	if port == 0 {
		return ep.Address
	}
	host := ep.Address
	if h, _, err := net.SplitHostPort(ep.Address); err == nil {
		host = h
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func isChat(path string) bool { return strings.HasSuffix(path, "/chat/completions") }

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
