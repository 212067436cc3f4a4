package kvcacheaware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/plugins"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/router/scheduler"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

var sharedTok = sync.OnceValues(func() (*tokenizer.Tokenizer, error) { return tokenizer.New("") })

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		ok         bool
	}{
		{"upstream args", `{"blockSizeToHash":16,"maxBlocksToMatch":128,"vllmTokenizerPort":8000,"sglangTokenizerPort":30000}`, true},
		{"kthena args", `{"kvEventsPort":6000,"kvEventsTopic":"kv-events","maxIndexedBlocks":1000,"tierWeights":{"gpu":1,"cpu":0.3}}`, true},
		{"unknown field", `{"redisAddr":"x"}`, false},
		{"negative", `{"maxBlocksToMatch":-1}`, false},
		{"bad port", `{"kvEventsPort":70000}`, false},
		{"bad weight", `{"tierWeights":{"cpu":2}}`, false},
		{"tokenizers", `{"tokenizers":[{"models":["llama-*"],"encoding":"cl100k_base"},{"engine":true}],"engineTokenizeTimeout":"50ms","engineTokenizeCacheSize":10}`, true},
		{"tokenizer with two sources", `{"tokenizers":[{"encoding":"cl100k_base","engine":true}]}`, false},
		{"tokenizer with no source", `{"tokenizers":[{"models":["x"]}]}`, false},
		{"unknown encoding", `{"tokenizers":[{"encoding":"nope"}]}`, false},
		{"bad glob", `{"tokenizers":[{"models":["["],"engine":true}]}`, false},
		{"zero timeout", `{"engineTokenizeTimeout":"0s"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tc.args))
			dec.DisallowUnknownFields()
			p, err := kvcacheaware.FactoryWith(kvindex.Open)(dec, nil)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			p.(*kvcacheaware.Plugin).Close()
		})
	}
	_, err := kvcacheaware.Factory(nil, nil)
	require.Error(t, err, "no index implementation")
}

func TestTarget(t *testing.T) {
	p, err := kvcacheaware.New(kvcacheaware.Args{TokenizerEncoding: tokenizer.DefaultEncoding}, kvindex.Open)
	require.NoError(t, err)
	defer p.Close()
	for _, tc := range []struct {
		addr   string
		labels map[string]string
		want   string
	}{
		{"10.0.0.5:8000", nil, "tcp://10.0.0.5:5557"},
		{"10.0.0.5", nil, "tcp://10.0.0.5:5557"},
		{"[fd00::1]:8000", nil, "tcp://[fd00::1]:5557"},
		{"10.0.0.5:8000", map[string]string{kvcacheaware.PortLabel: "6000"}, "tcp://10.0.0.5:6000"},
		{"10.0.0.5:8000", map[string]string{kvcacheaware.PortLabel: "0"}, ""},
	} {
		got, ok := p.Target(&framework.Endpoint{Address: tc.addr, Labels: tc.labels})
		assert.Equal(t, tc.want != "", ok, tc.addr)
		assert.Equal(t, tc.want, got, tc.addr)
	}
}

func TestParseFlattened(t *testing.T) {
	got := kvcacheaware.ParseFlattened("system: be brief\nuser: line one\nline two\nassistant: ok\nuser: \n")
	assert.Equal(t, []tokenizer.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "line one\nline two"},
		{Role: "assistant", Content: "ok"}, {Role: "user", Content: ""}}, got)
}

// goldenPrompts cover special tokens in text, multi-byte text, multi-part
// content, several turns and multi-line content.
var goldenPrompts = []string{
	`{"messages":[{"role":"user","content":"Hello!"}]}`,
	`{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Summarise <|eot_id|> and <|begin_of_text|> please"}]}`,
	`{"messages":[{"role":"user","content":"日本語のテキスト、絵文字 🚀🔥 und Umlaute äöü — ÇĞİÖŞÜ"}]}`,
	`{"messages":[{"role":"user","content":[{"type":"text","text":"part one, "},{"type":"text","text":"part two"}]}]}`,
	`{"messages":[{"role":"system","content":"rules\nline 2\n\nline 4"},{"role":"user","content":"  padded  "},{"role":"assistant","content":"answer"},{"role":"user","content":"next?"}]}`,
	`{"prompt":"Once upon a time <|start_header_id|> in 東京, there was"}`,
	`{"prompt":"plain completion text with tabs\tand\nnewlines"}`,
}

// The router's tokenisation of what it parsed from a request equals the
// engine's /tokenize of the same request.
func TestTokenizerParityWithEngine(t *testing.T) {
	tok, err := sharedTok()
	require.NoError(t, err)
	f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho})
	require.NoError(t, err)
	defer f.Close()
	for _, body := range goldenPrompts {
		req, err := openai.Parse([]byte(`{"model":"m",`+body[1:]), 1<<20)
		require.NoError(t, err)
		path := "/v1/completions"
		if strings.Contains(body, `"messages"`) {
			path = "/v1/chat/completions"
		}
		got, err := kvcacheaware.Tokens(tok, path, req.Prompt)
		require.NoError(t, err)

		resp, err := http.Post(f.URL(0)+"/tokenize", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		var out struct{ Tokens []int }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		resp.Body.Close()
		assert.Equal(t, out.Tokens, got, body)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type fleet struct {
	f   *sim.Fleet
	eps []*framework.Endpoint
}

func startFleet(t *testing.T, n int) *fleet {
	tok, err := sharedTok()
	require.NoError(t, err)
	var cfgs []sim.Config
	var ports []int
	for range n {
		port := freePort(t)
		ports = append(ports, port)
		cfgs = append(cfgs, sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho, KVEventsEndpoint: fmt.Sprintf("tcp://*:%d", port)})
	}
	f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	fl := &fleet{f: f}
	for i := range n {
		fl.eps = append(fl.eps, &framework.Endpoint{Key: fmt.Sprintf("default/engine-%d", i), Address: f.Addrs[i],
			Labels: map[string]string{kvcacheaware.PortLabel: fmt.Sprint(ports[i])}, Metrics: &framework.Metrics{}})
	}
	return fl
}

func (fl *fleet) chat(t *testing.T, i int, msgs []map[string]string) {
	raw, _ := json.Marshal(map[string]any{"model": sim.DefaultModel, "max_tokens": 1, "messages": msgs})
	resp, err := http.Post(fl.f.URL(i)+"/v1/chat/completions", "application/json", bytes.NewReader(raw))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// request is the scheduler's view of a chat request, as the director
// builds it.
func request(t *testing.T, msgs []map[string]string) *framework.Request {
	raw, _ := json.Marshal(map[string]any{"model": sim.DefaultModel, "messages": msgs})
	r, err := openai.Parse(raw, 1<<20)
	require.NoError(t, err)
	return &framework.Request{Model: sim.DefaultModel, UpstreamModel: sim.DefaultModel, Path: "/v1/chat/completions",
		Prompt: r.Prompt, PromptJSON: r.PromptJSON(raw), PromptBytes: r.PromptBytes}
}

func user(s string) []map[string]string { return []map[string]string{{"role": "user", "content": s}} }

// warm lets every engine's subscription through (scoring starts it).
func (fl *fleet) warm(t *testing.T, score func(*framework.Request, []*framework.Endpoint) []float64) {
	deadline := time.Now().Add(15 * time.Second)
	for i := range fl.eps {
		for n := 0; ; n++ {
			m := user(fmt.Sprintf("warm-up %d %s", n, strings.Repeat("pad ", 12)))
			fl.chat(t, i, m)
			time.Sleep(10 * time.Millisecond)
			if score(request(t, m), fl.eps[i:i+1])[0] > 0 {
				break
			}
			require.True(t, time.Now().Before(deadline))
		}
	}
}

// The scorer, fed by real engines over ZMQ, ranks first the engine that
// holds the request's prefix, and its score is that engine's true cached
// share of the prompt.
func TestScoreFollowsEngines(t *testing.T) {
	fl := startFleet(t, 3)
	p, err := kvcacheaware.New(kvcacheaware.Args{TokenizerEncoding: tokenizer.DefaultEncoding}, kvindex.Open)
	require.NoError(t, err)
	defer p.Close()
	score := func(req *framework.Request, eps []*framework.Endpoint) []float64 {
		out := make([]float64, len(eps))
		p.Score(context.Background(), req, eps, out)
		return out
	}
	fl.warm(t, score)

	system := strings.Repeat("You are a careful assistant who answers in detail. ", 40)
	conv := []map[string]string{{"role": "system", "content": system}, {"role": "user", "content": "First question?"}}
	fl.chat(t, 1, conv)
	tok, _ := sharedTok()
	next := append(conv, map[string]string{"role": "assistant", "content": "First answer."},
		map[string]string{"role": "user", "content": "Second question?"})
	req := request(t, next)
	ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "system", Content: system}, {Role: "user", Content: "First question?"},
		{Role: "assistant", Content: "First answer."}, {Role: "user", Content: "Second question?"}}, true)
	require.NoError(t, err)
	var got []float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = score(req, fl.eps)
		truth := float64(fl.f.Engines[1].CachedPrefixTokens(ids, "")) / float64(len(ids)/16*16)
		if truth > 0.5 && got[1] == truth {
			break
		}
		require.True(t, time.Now().Before(deadline), "score %v, engine's cached share %v", got, truth)
		time.Sleep(10 * time.Millisecond)
	}
	assert.Zero(t, got[0])
	assert.Zero(t, got[2])

	// An engine that leaves is forgotten.
	x := p.Index().(*kvindex.Backend).Index()
	require.NotZero(t, x.PodSize(fl.eps[1].Key))
	p.EndpointRemoved(fl.eps[1].Key)
	assert.Zero(t, x.PodSize(fl.eps[1].Key))
	assert.False(t, x.Known(fl.eps[1].Key))
}

// In prefill/decode routing a kvcache-aware instance in the prefill
// profile ranks prefill pods by the blocks they cache.
func TestPrefillProfileScoresCachedBlocks(t *testing.T) {
	fl := startFleet(t, 2)
	cfg, err := config.Parse([]byte(`scheduler:
  pluginConfig:
  - name: least-request
  - name: kvcache-aware
  plugins:
    Filter: {enabled: [least-request]}
    Score: {enabled: [{name: least-request, weight: 1}]}
  profiles:
    prefill:
      plugins:
        Score: {enabled: [{name: kvcache-aware, weight: 3}, {name: least-request, weight: 1}]}
    decode:
      plugins:
        Score: {enabled: [{name: least-request, weight: 1}]}
  pdDecider: {minUncachedTokens: 512}
`))
	require.NoError(t, err)
	s, err := scheduler.Build(plugins.NewRegistry(), cfg.Scheduler, nil, nil)
	require.NoError(t, err)
	defer func() {
		for _, pl := range s.Plugins() {
			if c, ok := pl.(*kvcacheaware.Plugin); ok {
				c.Close()
			}
		}
	}()
	rank := func(req *framework.Request, eps []*framework.Endpoint) []float64 {
		res, err := s.Prefill().Rank(context.Background(), req, eps, nil)
		require.NoError(t, err)
		out := make([]float64, len(eps))
		for _, c := range res.Ranked {
			for i, ep := range eps {
				if ep == c.Endpoint {
					out[i] = c.Scores[0]
				}
			}
		}
		return out
	}
	fl.warm(t, rank)
	doc := user(strings.Repeat("A long shared document about prefill and decode. ", 60))
	fl.chat(t, 0, doc)
	req := request(t, doc)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := s.Prefill().Rank(context.Background(), req, fl.eps, nil)
		require.NoError(t, err)
		if res.Ranked[0].Endpoint == fl.eps[0] && res.Ranked[0].Scores[0] > 0.9 {
			assert.Zero(t, res.Ranked[1].Scores[0])
			break
		}
		require.True(t, time.Now().Before(deadline), "ranked %+v", res.Ranked)
		time.Sleep(10 * time.Millisecond)
	}

	// The PD decider counts cached tokens from the same index (kvcache-aware
	// alone satisfies it): exactly what each engine holds.
	counter := s.CachedTokens()
	require.NotNil(t, counter)
	tok, err := sharedTok()
	require.NoError(t, err)
	ids, err := kvcacheaware.Tokens(tok, req.Path, req.Prompt)
	require.NoError(t, err)
	for i, ep := range fl.eps {
		cached, total, ok := counter.CachedPromptTokens(context.Background(), req, ep)
		require.True(t, ok, "engine %d known", i)
		assert.Equal(t, len(ids), total)
		assert.Equal(t, fl.f.Engine(i).CachedPrefixTokens(ids, ""), cached, "engine %d", i)
	}
	assert.Positive(t, fl.f.Engine(0).CachedPrefixTokens(ids, ""))
}

// A plugin instance dropped by a configuration reload closes its index
// (subscriptions, debug registration) once it is collected.
func TestDroppedInstanceClosesItsIndex(t *testing.T) {
	before := len(kvindex.Inspectors())
	func() {
		p, err := kvcacheaware.New(kvcacheaware.Args{TokenizerEncoding: tokenizer.DefaultEncoding}, kvindex.Open)
		require.NoError(t, err)
		require.Equal(t, kvcacheaware.Type, p.Type())
		require.Len(t, kvindex.Inspectors(), before+1)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(kvindex.Inspectors()) > before {
		require.True(t, time.Now().Before(deadline), "the dropped instance was not closed")
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// A debug probe naming a model tokenises with that model's in-process
// tokenizer, and says so plainly for a model its engines tokenise.
func TestProbeUsesTheModelsTokenizer(t *testing.T) {
	const dir = "../../../../tokenizer/testdata/tiny"
	p, err := kvcacheaware.New(kvcacheaware.Args{Tokenizers: []kvcacheaware.TokenizerSource{{Models: []string{"tiny-*"}, Path: dir}}}, kvindex.Open)
	require.NoError(t, err)
	defer p.Close()
	in := p.Index().(*kvindex.Backend)
	tiny, err := tokenizer.Load(dir)
	require.NoError(t, err)
	builtin, err := sharedTok()
	require.NoError(t, err)
	const text = "Héllo 東京, the probe's prompt 12345"
	require.NotEqual(t, len(tiny.EncodePrompt(text)), len(builtin.EncodePrompt(text)), "the test needs tokenizers that differ")

	res := in.Probe(kvindex.Probe{Model: "tiny-1", Prompt: text})
	assert.Empty(t, res.Error)
	assert.Equal(t, len(tiny.EncodePrompt(text)), res.Tokens)
	res = in.Probe(kvindex.Probe{Prompt: text})
	assert.Equal(t, len(builtin.EncodePrompt(text)), res.Tokens)
	res = in.Probe(kvindex.Probe{Model: "llama", Prompt: text})
	assert.Contains(t, res.Error, "tokenised by its engines")
}
