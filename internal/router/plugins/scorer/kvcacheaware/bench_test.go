package kvcacheaware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/tokenizer"
)

// BenchmarkScore is the routing latency the scorer adds per request, with
// the in-process tokenizer and with the engine's /tokenize (a kthena-sim
// engine in this process over loopback HTTP, every request a cache miss):
// tokenising a chat request (a shared system prompt of about 1,300 or 5,300 tokens (reported as prompt-tokens),
// whose segment the tokenizer has cached, and a new 100-token question each
// time), chaining its blocks and looking them up for 8 engines that each
// hold the system prompt (half of them on CPU).
func BenchmarkScore(b *testing.B) {
	for _, size := range []struct {
		name   string
		repeat int
	}{{"short", 250}, {"long", 1000}} {
		for _, mode := range []string{"in-process", "llama3-files", "engine"} {
			b.Run(size.name+"/"+mode, func(b *testing.B) { benchmarkScore(b, size.repeat, mode) })
		}
	}
}

// llama3Dir holds Llama 3's tokenizer files (installed by hack/system-deps.sh).
var llama3Dir = filepath.Join("..", "..", "..", "..", "..", "hack", "tokenizer-golden", "node_modules", "@lenml", "tokenizer-llama3", "models")

func benchmarkScore(b *testing.B, repeat int, mode string) {
	args := kvcacheaware.Args{TokenizerEncoding: tokenizer.DefaultEncoding}
	tok, err := sharedTok()
	require.NoError(b, err)
	engine := mode == "engine"
	if mode == "llama3-files" {
		args = kvcacheaware.Args{Tokenizers: []kvcacheaware.TokenizerSource{{Path: llama3Dir}}}
		tok, err = tokenizer.Load(llama3Dir)
		require.NoError(b, err, "run hack/system-deps.sh to install the models' tokenizer files")
	}
	engineAddr := ""
	if engine {
		args = kvcacheaware.Args{EngineTokenizeCacheSize: 1}
		f, err := sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho})
		require.NoError(b, err)
		defer f.Close()
		engineAddr = f.Addrs[0]
	}
	p, err := kvcacheaware.New(args, kvindex.Open)
	require.NoError(b, err)
	defer p.Close()
	x := p.Index().(*kvindex.Backend).Index()
	system := strings.Repeat("Policy text seven applies. ", repeat)
	ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "system", Content: system}}, false)
	require.NoError(b, err)
	hs := kvcache.NewHasher("").Chain(ids, 16, nil)
	ev := kvevents.BlockStored{BlockSize: 16, TokenIDs: ids[:len(hs)*16]}
	for _, h := range hs {
		ev.BlockHashes = append(ev.BlockHashes, kvevents.BlockHash(append([]byte(nil), h[:]...)))
	}
	var eps []*framework.Endpoint
	for i := range 8 {
		key := fmt.Sprintf("default/engine-%d", i)
		e := ev
		if i%2 == 1 {
			e.Medium = "CPU"
		}
		x.AddPod(key).Apply(0, kvevents.Batch{Events: []kvevents.Event{e}})
		addr := fmt.Sprintf("127.0.0.%d:8000", i+1)
		if engine {
			addr = engineAddr
		}
		eps = append(eps, &framework.Endpoint{Key: key, Address: addr,
			Labels: map[string]string{kvcacheaware.PortLabel: "0"}, Metrics: &framework.Metrics{}})
	}
	reqs := make([]*framework.Request, 64)
	for i := range reqs {
		raw, _ := json.Marshal(map[string]any{"model": "m", "messages": []map[string]string{{"role": "system", "content": system},
			{"role": "user", "content": fmt.Sprintf("Question %d: %s", i, strings.Repeat("what about this clause? ", 16))}}})
		r, err := openai.Parse(raw, 1<<20)
		require.NoError(b, err)
		reqs[i] = &framework.Request{Model: "m", UpstreamModel: sim.DefaultModel, Path: "/v1/chat/completions", Prompt: r.Prompt,
			PromptJSON: r.PromptJSON(raw), PromptBytes: r.PromptBytes}
	}
	out := make([]float64, len(eps))
	p.Score(context.Background(), reqs[0], eps, out)
	require.Greater(b, out[0], 0.8)
	require.InDelta(b, out[0]/2, out[1], 0.05)
	ptoks, _ := kvcacheaware.Tokens(tok, reqs[0].Path, reqs[0].Prompt)
	// The thread's CPU time per request is reported too: on a shared
	// machine wall time mostly measures waiting for a CPU.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := reqs[i%len(reqs)]
		req.PromptTokens = nil // a new request: the plugin's per-request token cache is empty
		p.Score(context.Background(), req, eps, out)
	}
	b.StopTimer()
	b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(ptoks)), "prompt-tokens")
}

// threadCPU is the calling thread's CPU time in nanoseconds (Linux).
func threadCPU() int64 {
	var ru syscall.Rusage
	const rusageThread = 1
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
