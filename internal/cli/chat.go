package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// defaultRouterPort is `kthena up`'s default --router-port.
const defaultRouterPort = 8080

func newChat() *cobra.Command {
	var routerURL, system string
	var maxTokens int
	cmd := &cobra.Command{
		Use:   "chat MODEL PROMPT",
		Short: "Send one chat completion through the router and print the reply as it streams",
		Long: `chat sends PROMPT to MODEL through the Kthena router's OpenAI API
(/v1/chat/completions, streamed) and prints the tokens as they arrive.

The router is --router-url, else $KTHENA_ROUTER_URL, else the local
platform's router (the "router" port in <state-dir>/ports.json, else
127.0.0.1:8080, kthena up's default).`,
		Example: `  kthena chat demo "Hello"
  kthena chat qwen3-8b "Write a haiku" --max-tokens 64 --router-url http://gateway.example:80`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := routerURL
			if url == "" {
				url = os.Getenv("KTHENA_ROUTER_URL")
			}
			if url == "" {
				dir, err := stateDir(cmd)
				if err != nil {
					return err
				}
				url = localRouterURL(dir)
			}
			return chat(cmd, strings.TrimSuffix(url, "/"), args[0], system, args[1], maxTokens)
		},
	}
	cmd.Flags().StringVar(&routerURL, "router-url", "", "router base URL (default: $KTHENA_ROUTER_URL, else the local platform's router)")
	cmd.Flags().StringVar(&system, "system", "", "system message sent before the prompt")
	cmd.Flags().IntVar(&maxTokens, "max-tokens", 0, "maximum tokens of the reply (default: the engine's)")
	return cmd
}

// localRouterURL reads the router port `kthena up` recorded, if it did.
func localRouterURL(dir string) string {
	var ports struct {
		Router int `json:"router"`
	}
	port := defaultRouterPort
	if data, err := os.ReadFile(filepath.Join(dir, "ports.json")); err == nil && json.Unmarshal(data, &ports) == nil && ports.Router != 0 {
		port = ports.Router
	}
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// chatChunk is the part of a streamed chunk (or an error event) chat reads.
type chatChunk struct {
	Choices []struct {
		Delta struct {
			Content          string `json:"content"`
			ReasoningContent string `json:"reasoning_content"`
		} `json:"delta"`
	} `json:"choices"`
	Error *apiError `json:"error"`
}

type apiError struct {
	Message string `json:"message"`
}

func chat(cmd *cobra.Command, url, model, system, prompt string, maxTokens int) error {
	var msgs []chatMessage
	if system != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: system})
	}
	msgs = append(msgs, chatMessage{Role: "user", Content: prompt})
	req := map[string]any{"model": model, "messages": msgs, "stream": true}
	if maxTokens > 0 {
		req["max_tokens"] = maxTokens
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, url+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			return fmt.Errorf("router %s not reachable: %v (set --router-url or $KTHENA_ROUTER_URL)", url, uerr.Unwrap())
		}
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return routerError(resp.StatusCode, data)
	}
	out := cmd.OutOrStdout()
	// Flush each token as it arrives when stdout is buffered by the caller.
	flush := func() {}
	if f, ok := out.(interface{ Flush() error }); ok {
		flush = func() { _ = f.Flush() }
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		data = strings.TrimSpace(data)
		if data == "[DONE]" {
			break
		}
		var c chatChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return fmt.Errorf("router sent a chunk that is not JSON: %.200s", data)
		}
		if c.Error != nil {
			_, _ = fmt.Fprintln(out)
			return fmt.Errorf("router: %s", c.Error.Message)
		}
		for _, ch := range c.Choices {
			if _, err := io.WriteString(out, ch.Delta.Content); err != nil {
				return err
			}
		}
		flush()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the stream: %w", err)
	}
	_, err = fmt.Fprintln(out)
	return err
}

// routerError turns an OpenAI-style error body into one line.
func routerError(status int, body []byte) error {
	var e struct {
		Error apiError `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("router: %s (HTTP %d)", e.Error.Message, status)
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return fmt.Errorf("router: HTTP %d: %s", status, msg)
}
