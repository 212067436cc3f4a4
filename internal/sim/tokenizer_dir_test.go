package sim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/tokenizer"
)

// tinyTokenizerDir is a small Hugging Face tokenizer (byte-level BPE with
// Llama-3-style markers, a BOS post-processor and a chat template).
const tinyTokenizerDir = "../tokenizer/testdata/tiny"

func idsOf(t *testing.T, v any) []int {
	t.Helper()
	list, ok := v.([]any)
	require.True(t, ok, "tokens: %v", v)
	ids := make([]int, len(list))
	for i, x := range list {
		ids[i] = int(x.(float64))
	}
	return ids
}

func TestTokenizerDirIsUsedForTokenizeCountsAndKVEvents(t *testing.T) {
	port := freePort(t)
	f := startFleet(t, fastConfig(func(c *Config) {
		c.TokenizerDir = tinyTokenizerDir
		c.KVEventsEndpoint = fmt.Sprintf("tcp://*:%d", port)
	}))
	tok, err := tokenizer.Load(tinyTokenizerDir)
	require.NoError(t, err)
	require.Same(t, tok, f.Engines[0].Tokenizer(), "the engine uses the directory's tokenizer, not the fleet's")

	prompt := "Kubernetes-native serving: 東京 🚀 <|eot_id|> 12345"
	code, out := postJSON(t, f.URL(0)+"/tokenize", map[string]any{"prompt": prompt})
	require.Equal(t, 200, code, out)
	want := tok.EncodePrompt(prompt)
	assert.Equal(t, want, idsOf(t, out["tokens"]))
	assert.Equal(t, 4000, want[0], "a completion prompt starts with the post-processor's BOS")

	code, out = postJSON(t, f.URL(0)+"/tokenize", map[string]any{"prompt": prompt, "add_special_tokens": false})
	require.Equal(t, 200, code, out)
	assert.Equal(t, tok.Encode(prompt), idsOf(t, out["tokens"]))

	msgs := []map[string]string{{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 👋, what is 2+2?"}}
	chat := []tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi 👋, what is 2+2?"}}
	code, out = postJSON(t, f.URL(0)+"/tokenize", map[string]any{"messages": msgs})
	require.Equal(t, 200, code, out)
	wantChat, err := tok.EncodeChat(chat, true)
	require.NoError(t, err)
	assert.Equal(t, wantChat, idsOf(t, out["tokens"]))

	// The model's template rejects an unknown role: a 400, as vLLM answers.
	code, out = postJSON(t, f.URL(0)+"/tokenize", map[string]any{"messages": []map[string]string{{"role": "robot", "content": "x"}}})
	assert.Equal(t, 400, code)
	assert.Contains(t, fmt.Sprint(out), "unknown role robot")

	// Token counts of a completion come from the same tokenizer.
	c := client(f, 0)
	resp, err := c.Completions.New(testCtx(t), openai.CompletionNewParams{Model: openai.CompletionNewParamsModel(DefaultModel),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)}, MaxTokens: openai.Int(1)})
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), resp.Usage.PromptTokens)

	// KV events carry the loaded tokenizer's IDs for a chat request.
	sub, err := kvevents.NewSubscriber(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", port), "kv-events")
	require.NoError(t, err)
	defer sub.Close()
	stored := make(chan kvevents.BlockStored, 1024)
	go func() {
		for {
			m, err := sub.Recv()
			if err != nil {
				return
			}
			for _, ev := range m.Batch.Events {
				if s, ok := ev.(kvevents.BlockStored); ok {
					stored <- s
				}
			}
		}
	}()
	content := strings.Repeat("A long shared system prompt about caching 東京. ", 30)
	ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: content}}, true)
	require.NoError(t, err)
	hashes := kvcache.NewHasher("").Chain(ids, 16, nil)
	require.NotEmpty(t, hashes)
	first := kvevents.BlockHash(hashes[0][:]).Uint64()
	deadline := time.After(15 * time.Second)
	for i := 0; ; i++ {
		if i > 0 {
			// ZMQ drops messages until the subscription reaches the
			// publisher, and only a prompt's first request stores its
			// blocks: retry with a new prompt.
			content = fmt.Sprintf("Variant %d. %s", i, content)
			ids, err = tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: content}}, true)
			require.NoError(t, err)
			hashes = kvcache.NewHasher("").Chain(ids, 16, nil)
			first = kvevents.BlockHash(hashes[0][:]).Uint64()
		}
		_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: DefaultModel,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(content)}, MaxTokens: openai.Int(1)})
		require.NoError(t, err)
		found := false
		wait := time.After(300 * time.Millisecond)
	drain:
		for {
			select {
			case s := <-stored:
				for k, h := range s.BlockHashes {
					if h.Uint64() == first {
						assert.Equal(t, ids[:16], s.TokenIDs[k*16:(k+1)*16], "the stored block's token IDs are the loaded tokenizer's")
						found = true
					}
				}
			case <-wait:
				break drain
			case <-deadline:
				t.Fatal("no KV event for the chat prompt's first block")
			}
		}
		if found {
			return
		}
	}
}

// Continuing a partial answer renders the model's template up to the end of
// the final message.
func TestTokenizerDirContinuesFinalMessage(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) { c.TokenizerDir = tinyTokenizerDir }))
	tok, err := tokenizer.Load(tinyTokenizerDir)
	require.NoError(t, err)
	code, out := postJSON(t, f.URL(0)+"/v1/chat/completions", map[string]any{"model": DefaultModel, "max_tokens": 1,
		"continue_final_message": true, "add_generation_prompt": false,
		"messages": []map[string]string{{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "One, two,"}}})
	require.Equal(t, 200, code, out)
	text, err := tok.RenderContinuation([]tokenizer.Message{{Role: "user", Content: "Count to three."}, {Role: "assistant", Content: "One, two,"}})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(text, "assistant<|end_header_id|>\n\nOne, two,"), "%q", text)
	usage, ok := out["usage"].(map[string]any)
	require.True(t, ok, out)
	assert.Equal(t, float64(len(tok.Encode(text))), usage["prompt_tokens"])
}
