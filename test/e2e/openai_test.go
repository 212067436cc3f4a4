package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenAIClient: chat and completion requests, streaming and not,
// through the official openai npm client against the router.
func TestOpenAIClient(t *testing.T) {
	dir := filepath.Join(env.repo, "test", "e2e", "openai-client")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("the openai npm client is not installed: run hack/system-deps.sh (make test does)")
	}
	create(t, simServing("oai", "oai", 1), modelServer("oai", "oai"), simpleRoute("oai", "oai", "oai"))
	waitReady(t, "oai", 1)
	waitServes(t, "oai")
	out, err := exec.Command("node", filepath.Join(dir, "client.mjs"), env.routerURL, "oai").CombinedOutput()
	if err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, out)
	}
	var res struct {
		Chat struct {
			Content string
			Usage   struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		ChatStream struct {
			Chunks  int
			Content string
			Usage   *struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		Completion       struct{ Text string }
		CompletionStream struct {
			Chunks int
			Text   string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if strings.TrimSpace(res.Chat.Content) == "" || res.Chat.Usage.CompletionTokens == 0 {
		t.Errorf("chat: empty answer or usage: %+v", res.Chat)
	}
	if res.ChatStream.Chunks < 2 || strings.TrimSpace(res.ChatStream.Content) == "" {
		t.Errorf("chat stream: %d chunks, content %q", res.ChatStream.Chunks, res.ChatStream.Content)
	}
	if res.ChatStream.Usage == nil || res.ChatStream.Usage.CompletionTokens == 0 {
		t.Errorf("chat stream: no usage chunk: %+v", res.ChatStream)
	}
	if strings.TrimSpace(res.Completion.Text) == "" {
		t.Errorf("completion: empty text")
	}
	if res.CompletionStream.Chunks < 2 || strings.TrimSpace(res.CompletionStream.Text) == "" {
		t.Errorf("completion stream: %d chunks, text %q", res.CompletionStream.Chunks, res.CompletionStream.Text)
	}
}
