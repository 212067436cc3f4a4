package director

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContinuationBody(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		chat       bool
		partial    string
		streamed   int64
		want       string
		remaining  bool
		err        string
	}{
		{name: "chat: partial answer as the final assistant message", chat: true, partial: "Hel", streamed: 1,
			body:      `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":10,"min_tokens":3,"stream":true,"seed":7}`,
			want:      `{"add_generation_prompt":false,"continue_final_message":true,"max_completion_tokens":9,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}],"min_tokens":2,"model":"up","seed":7,"stream":true,"stream_options":{"include_usage":true}}`,
			remaining: true},
		{name: "chat: the client's own continuation is extended", chat: true, partial: "lo", streamed: 1,
			body:      `{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}],"continue_final_message":true,"add_generation_prompt":false,"stream":true}`,
			want:      `{"add_generation_prompt":false,"continue_final_message":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello"}],"model":"up","stream":true,"stream_options":{"include_usage":true}}`,
			remaining: true},
		{name: "chat: nothing streamed yet resends the request", chat: true,
			body:      `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false}}`,
			want:      `{"messages":[{"role":"user","content":"hi"}],"model":"up","stream":true,"stream_options":{"include_usage":true}}`,
			remaining: true},
		{name: "completions: prompt list, default limit, no echo", partial: " b", streamed: 1,
			body:      `{"model":"m","prompt":["a"],"echo":true,"stream":true}`,
			want:      `{"echo":false,"max_tokens":15,"model":"up","prompt":["a b"],"stream":true,"stream_options":{"include_usage":true}}`,
			remaining: true},
		{name: "limit reached", chat: true, partial: "abc", streamed: 3,
			body: `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}`,
			want: `{"add_generation_prompt":false,"continue_final_message":true,"max_tokens":1,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"abc"}],"model":"up","stream":true,"stream_options":{"include_usage":true}}`},
		{name: "n > 1", chat: true, body: `{"model":"m","messages":[],"n":2}`, err: "several choices"},
		{name: "logprobs", chat: true, body: `{"model":"m","messages":[],"logprobs":true}`, err: "logprobs"},
		{name: "structured output", chat: true, body: `{"model":"m","messages":[],"response_format":{"type":"json_schema"}}`, err: "response_format json_schema"},
		{name: "token ids", partial: "x", body: `{"model":"m","prompt":[1,2,3]}`, err: "not one text"},
		{name: "multi-part final message", chat: true, partial: "x",
			body: `{"model":"m","messages":[{"role":"assistant","content":[{"type":"text","text":"a"}]}],"continue_final_message":true}`, err: "no text content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, remaining, err := continuationBody([]byte(tc.body), tc.chat, "up", tc.partial, tc.streamed)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(out))
			assert.Equal(t, tc.remaining, remaining)
		})
	}
}

func TestContinuationRewrite(t *testing.T) {
	k := &continuation{id: []byte(`"a"`), created: []byte(`1`), model: []byte(`"m"`), object: []byte(`"chat.completion.chunk"`), streamed: 2}
	out := k.rewrite([]byte(`{"id":"b","object":"chat.completion.chunk","created":2,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`), true)
	assert.Equal(t, `{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`, string(out))
	assert.Nil(t, k.rewrite([]byte(`{"id":"b","created":2,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`), true), "second role delta")
	assert.Nil(t, k.rewrite([]byte(`{"id":"b","created":2,"model":"m","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`), true), "usage chunk")
	u := k.total()
	assert.Equal(t, int64(10), u.PromptTokens)
	assert.Equal(t, int64(7), u.CompletionTokens)
	assert.Equal(t, `data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":7,"total_tokens":17}}`+"\n\n", string(k.usageChunk(u)))
}

func TestIsErrorEvent(t *testing.T) {
	assert.True(t, isErrorEvent([]byte(`{"error": {"message": "boom", "code": 500}}`)))
	assert.False(t, isErrorEvent([]byte(`{"choices":[{"delta":{"content":"\"error\""}}]}`)))
	assert.False(t, isErrorEvent([]byte(`[DONE]`)))
}
