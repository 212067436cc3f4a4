package sim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChatNonStreamingWithOfficialClient(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	c := client(f, 0)
	resp, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{
		Model:     DefaultModel,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Echo these words back please")},
		MaxTokens: openai.Int(3),
	})
	require.NoError(t, err)
	require.Len(t, resp.Choices, 1)
	assert.Equal(t, "Echo these words", resp.Choices[0].Message.Content)
	assert.Equal(t, "length", resp.Choices[0].FinishReason)
	assert.Equal(t, int64(3), resp.Usage.CompletionTokens)
	assert.Equal(t, int64(f.Engines[0].Tokenizer().Count(
		"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nEcho these words back please<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")),
		resp.Usage.PromptTokens)
	assert.True(t, strings.HasPrefix(resp.ID, "chatcmpl-"))
}

func TestChatStreamingWithUsageAndCachedTokens(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	c := client(f, 0)
	long := strings.Repeat("Kubernetes schedules pods onto nodes and the router picks an engine. ", 40)
	params := openai.ChatCompletionNewParams{
		Model:         DefaultModel,
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(long), openai.UserMessage("count to five")},
		MaxTokens:     openai.Int(8),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	var usages []openai.CompletionUsage
	for range 2 {
		stream := c.Chat.Completions.NewStreaming(testCtx(t), params, option.WithJSONSet("ignore_eos", true))
		acc := openai.ChatCompletionAccumulator{}
		chunks := 0
		var u openai.CompletionUsage
		for stream.Next() {
			acc.AddChunk(stream.Current())
			if stream.Current().Usage.TotalTokens > 0 {
				u = stream.Current().Usage // the accumulator drops the details
			}
			chunks++
		}
		require.NoError(t, stream.Err())
		require.Len(t, acc.Choices, 1)
		assert.Equal(t, "length", acc.Choices[0].FinishReason)
		assert.NotEmpty(t, acc.Choices[0].Message.Content)
		assert.GreaterOrEqual(t, chunks, 9, "role chunk + one per token + usage")
		usages = append(usages, u)
	}
	assert.Equal(t, int64(8), usages[0].CompletionTokens, "ignore_eos makes exactly max_tokens")
	assert.Zero(t, usages[0].PromptTokensDetails.CachedTokens)
	assert.Greater(t, usages[1].PromptTokensDetails.CachedTokens, usages[1].PromptTokens*9/10, "second request hits the cached prefix")
	assert.Equal(t, usages[1].PromptTokensDetails.CachedTokens%16, int64(0), "whole blocks")
}

func TestCompletionsAndStop(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	c := client(f, 0)
	resp, err := c.Completions.New(testCtx(t), openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModel(DefaultModel),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("alpha beta gamma delta epsilon")},
		MaxTokens: openai.Int(10),
		Stop:      openai.CompletionNewParamsStopUnion{OfString: openai.String(" gamma")},
	})
	require.NoError(t, err)
	assert.Equal(t, "alpha beta", resp.Choices[0].Text)
	assert.Equal(t, openai.CompletionChoiceFinishReason("stop"), resp.Choices[0].FinishReason)

	stream := c.Completions.NewStreaming(testCtx(t), openai.CompletionNewParams{
		Model:     openai.CompletionNewParamsModel(DefaultModel),
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("one two three")},
		MaxTokens: openai.Int(2),
	})
	var text strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Text)
		}
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, "one two", text.String())
}

func TestBadInputGetsEngineErrors(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) { c.MaxModelLen = 256 }), fastConfig(func(c *Config) { c.Engine = SGLang }))
	url := f.URL(0) + "/v1/chat/completions"
	msgs := []map[string]string{{"role": "user", "content": "hi"}}
	cases := []struct {
		name   string
		body   any
		status int
		substr string
	}{
		{"malformed JSON", `{"model": "x", "messages": [`, 400, "Invalid JSON"},
		{"missing model", map[string]any{"messages": msgs}, 400, "model"},
		{"unknown model", map[string]any{"model": "nope", "messages": msgs}, 404, "does not exist"},
		{"negative max_tokens", map[string]any{"model": DefaultModel, "messages": msgs, "max_tokens": -1}, 400, "max_tokens"},
		{"n > 1", map[string]any{"model": DefaultModel, "messages": msgs, "n": 2}, 400, "n must be 1"},
		{"too long", map[string]any{"model": DefaultModel, "messages": []map[string]string{{"role": "user", "content": strings.Repeat("word ", 400)}}}, 400, "maximum context length is 256"},
		{"empty messages", map[string]any{"model": DefaultModel, "messages": []any{}}, 400, "messages"},
		{"bad content", map[string]any{"model": DefaultModel, "messages": []any{map[string]any{"role": "user", "content": 5}}}, 400, "content"},
		{"wrong types", `{"model": 5}`, 400, "Invalid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postJSON(t, url, tc.body)
			assert.Equal(t, tc.status, status)
			errObj, ok := body["error"].(map[string]any)
			require.True(t, ok, "vLLM nests the error: %v", body)
			assert.Contains(t, errObj["message"], tc.substr)
			assert.Equal(t, float64(tc.status), errObj["code"])
			assert.Contains(t, errObj, "param")
		})
	}
	// SGLang keeps the flat shape.
	status, body := postJSON(t, f.URL(1)+"/v1/chat/completions", map[string]any{"model": "nope", "messages": msgs})
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "error", body["object"])
	assert.Equal(t, "NotFoundError", body["type"])
	// The official client surfaces the status.
	c := client(f, 0)
	_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: "nope",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 404, apiErr.StatusCode)
}

func TestTokenizeDetokenizeAndHealth(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	status, body := postJSON(t, f.URL(0)+"/tokenize", map[string]any{"model": DefaultModel, "prompt": "hello world"})
	require.Equal(t, 200, status)
	assert.Equal(t, float64(2), body["count"])
	assert.Equal(t, []any{15339.0, 1917.0}, body["tokens"])
	status, body = postJSON(t, f.URL(0)+"/detokenize", map[string]any{"model": DefaultModel, "tokens": []int{15339, 1917}})
	require.Equal(t, 200, status)
	assert.Equal(t, "hello world", body["prompt"])
	status, body = postJSON(t, f.URL(0)+"/tokenize", map[string]any{"messages": []map[string]string{{"role": "user", "content": "hi"}}})
	require.Equal(t, 200, status)
	assert.Greater(t, body["count"], 5.0)
	resp, err := http.Get(f.URL(0) + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
}

func TestIntrospectionEndpoints(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	msgs := []map[string]string{{"role": "system", "content": strings.Repeat("Answer briefly and cite sources. ", 30)},
		{"role": "user", "content": "why?"}}
	status, body := postJSON(t, f.URL(0)+"/sim/v1/cached_tokens", map[string]any{"model": DefaultModel, "messages": msgs})
	require.Equal(t, 200, status)
	assert.Zero(t, body["cached_tokens"])
	status, _ = postJSON(t, f.URL(0)+"/v1/chat/completions", map[string]any{"model": DefaultModel, "messages": msgs, "max_tokens": 1})
	require.Equal(t, 200, status)
	status, body = postJSON(t, f.URL(0)+"/sim/v1/cached_tokens", map[string]any{"model": DefaultModel, "messages": msgs})
	require.Equal(t, 200, status)
	assert.Greater(t, body["cached_tokens"], 0.9*body["prompt_tokens"].(float64))

	resp, err := http.Get(f.URL(0) + "/sim/v1/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var stats struct {
		NumBlocks int `json:"numBlocks"`
		Totals    struct {
			FinishedRequests int `json:"finishedRequests"`
		} `json:"totals"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
	assert.Equal(t, 1, stats.Totals.FinishedRequests)
	assert.Positive(t, stats.NumBlocks)
	status, _ = postJSON(t, f.URL(0)+"/sim/v1/cached_tokens", map[string]any{})
	assert.Equal(t, 400, status)
}
