package sim

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func modelIDs(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/v1/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID     string  `json:"id"`
			Parent *string `json:"parent"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestLoRALoadUnloadChangesModels(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) {
		c.LoRAModules = []LoRAModule{{Name: "sql-lora", Path: "/adapters/sql"}}
		c.MaxLoRAs = 2
	}))
	url := f.URL(0)
	assert.Equal(t, []string{DefaultModel, "sql-lora"}, modelIDs(t, url))

	status, _ := postJSON(t, url+"/v1/load_lora_adapter", map[string]string{"lora_name": "chat-lora", "lora_path": "/adapters/chat"})
	require.Equal(t, 200, status)
	assert.Equal(t, []string{DefaultModel, "sql-lora", "chat-lora"}, modelIDs(t, url))
	status, body := postJSON(t, url+"/v1/load_lora_adapter", map[string]string{"lora_name": "chat-lora", "lora_path": "/adapters/chat"})
	assert.Equal(t, 400, status)
	assert.Contains(t, body["error"].(map[string]any)["message"], "already been loaded")

	c := client(f, 0)
	resp, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: "chat-lora",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("adapter works")}, MaxTokens: openai.Int(2)})
	require.NoError(t, err)
	assert.Equal(t, "adapter works", resp.Choices[0].Message.Content)

	// While an adapter request runs, vllm:lora_requests_info names it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		postJSON(t, url+"/v1/chat/completions", map[string]any{"model": "chat-lora", "max_tokens": 10000, "ignore_eos": true,
			"messages": []map[string]string{{"role": "user", "content": "long answer"}}})
	}()
	require.Eventually(t, func() bool {
		m := scrape(t, url)["vllm:lora_requests_info"].GetMetric()[0]
		return labelOf(m, "running_lora_adapters") == "chat-lora"
	}, 10*time.Second, 5*time.Millisecond)
	<-done

	status, _ = postJSON(t, url+"/v1/unload_lora_adapter", map[string]string{"lora_name": "chat-lora"})
	require.Equal(t, 200, status)
	assert.Equal(t, []string{DefaultModel, "sql-lora"}, modelIDs(t, url))
	status, _ = postJSON(t, url+"/v1/unload_lora_adapter", map[string]string{"lora_name": "chat-lora"})
	assert.Equal(t, 404, status)

	// A request for an unloaded adapter is a 404 in vLLM's format.
	status, body = postJSON(t, url+"/v1/chat/completions", map[string]any{"model": "chat-lora",
		"messages": []map[string]string{{"role": "user", "content": "x"}}})
	assert.Equal(t, 404, status)
	assert.Equal(t, "NotFoundError", body["error"].(map[string]any)["type"])

	fams := scrape(t, url)
	lora := fams["vllm:lora_requests_info"].GetMetric()[0]
	assert.Equal(t, "2", labelOf(lora, "max_lora"))
}
