package sim

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContinueFinalMessage(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	url := f.URL(0) + "/v1/chat/completions"
	tok := f.Engines[0].Tokenizer()
	const question = "Echo these words back to me please"

	// The partial answer is the beginning of the echo: the continuation
	// echoes the rest, and the partial's tokens are prompt tokens.
	status, out := postJSON(t, url, fmt.Sprintf(`{"model":%q,"max_tokens":20,"continue_final_message":true,"add_generation_prompt":false,
		"messages":[{"role":"user","content":%q},{"role":"assistant","content":"Echo these"}]}`, DefaultModel, question))
	require.Equal(t, http.StatusOK, status, out)
	msg := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	assert.Equal(t, " words back to me please", msg["content"])
	u := out["usage"].(map[string]any)
	want := tok.Count("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + question +
		"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nEcho these")
	assert.Equal(t, float64(want), u["prompt_tokens"], "the partial answer counts as prompt, without end of turn or a new header")
	assert.Equal(t, float64(tok.Count(" words back to me please")), u["completion_tokens"])

	// The generation prompt may be left out: continue alone implies none.
	status, _ = postJSON(t, url, fmt.Sprintf(`{"model":%q,"max_tokens":2,"continue_final_message":true,
		"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hel"}]}`, DefaultModel))
	assert.Equal(t, http.StatusOK, status)

	// max_tokens bounds the new tokens only.
	status, out = postJSON(t, url, fmt.Sprintf(`{"model":%q,"max_tokens":2,"continue_final_message":true,"add_generation_prompt":false,
		"messages":[{"role":"user","content":%q},{"role":"assistant","content":"Echo"}]}`, DefaultModel, question))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, float64(2), out["usage"].(map[string]any)["completion_tokens"])
	assert.Equal(t, "length", out["choices"].([]any)[0].(map[string]any)["finish_reason"])
}

func TestContinueFinalMessageRejected(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	url := f.URL(0) + "/v1/chat/completions"
	for _, tc := range []struct{ name, body, want string }{
		{"both flags", `"continue_final_message":true,"add_generation_prompt":true,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"He"}]`,
			errBothGenerationFlags},
		{"no assistant message", `"continue_final_message":true,"add_generation_prompt":false,"messages":[{"role":"user","content":"hi"}]`,
			"continue_final_message requires the final message to be the assistant's (got role user)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := postJSON(t, url, fmt.Sprintf(`{"model":%q,%s}`, DefaultModel, tc.body))
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, tc.want, out["error"].(map[string]any)["message"])
		})
	}
}

func TestCompletionsContinuationForm(t *testing.T) {
	f := startFleet(t, fastConfig(nil))
	tok := f.Engines[0].Tokenizer()
	// The completions form is the prompt followed by the partial text.
	status, out := postJSON(t, f.URL(0)+"/v1/completions", fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time there","max_tokens":3}`, DefaultModel))
	require.Equal(t, http.StatusOK, status)
	u := out["usage"].(map[string]any)
	assert.Equal(t, float64(tok.Count("Once upon a time there")), u["prompt_tokens"])
	assert.Equal(t, float64(3), u["completion_tokens"])
}
