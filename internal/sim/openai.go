package sim

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kthena/kthena/internal/tokenizer"
)

// completionRequest is the union of the chat and text completion request
// fields the simulator reads; everything else is accepted and ignored.
type completionRequest struct {
	Model               *string         `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS           bool  `json:"ignore_eos"`
	AddGenerationPrompt *bool `json:"add_generation_prompt"`
	// ContinueFinalMessage continues the final assistant message instead
	// of starting a new one (continuation.go).
	ContinueFinalMessage *bool          `json:"continue_final_message"`
	KVTransferParams     map[string]any `json:"kv_transfer_params"`
	BootstrapHost        *string        `json:"bootstrap_host"`
	BootstrapPort        *int           `json:"bootstrap_port"`
	BootstrapRoom        *int64         `json:"bootstrap_room"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// text flattens string or multi-part content to text.
func (m chatMessage) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", fmt.Errorf("message content must be a string or a list of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

func toTokenizerMessages(msgs []chatMessage) ([]tokenizer.Message, error) {
	out := make([]tokenizer.Message, 0, len(msgs))
	for i, m := range msgs {
		if m.Role == "" {
			return nil, fmt.Errorf("messages[%d].role is required", i)
		}
		t, err := m.text()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		out = append(out, tokenizer.Message{Role: m.Role, Content: t})
	}
	return out, nil
}

// stops parses "stop": a string or a list of strings.
func parseStops(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("stop must be a string or a list of strings")
	}
	return many, nil
}

// promptInput reads a completion prompt: text, a list with one text, or
// token IDs.
func parsePrompt(raw json.RawMessage, tok *tokenizer.Tokenizer) (text string, ids []int, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, fmt.Errorf("prompt is required")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, tok.EncodePrompt(s), nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		if len(list) != 1 {
			return "", nil, fmt.Errorf("only one prompt per request is supported, got %d", len(list))
		}
		return list[0], tok.EncodePrompt(list[0]), nil
	}
	if json.Unmarshal(raw, &ids) == nil {
		return tok.Decode(ids), ids, nil
	}
	return "", nil, fmt.Errorf("prompt must be a string or a list of token IDs")
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func makeUsage(prompt, completion, cached int) *usage {
	u := &usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	u.PromptTokensDetails.CachedTokens = cached
	return u
}
