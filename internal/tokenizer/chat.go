package tokenizer

import (
	"errors"
	"strings"
)

// Message is one chat turn, already flattened to text (multi-part content is
// joined by the caller).
type Message struct {
	Role    string
	Content string
}

// ApplyChatTemplate flattens messages into one prompt string with Llama 3's
// header/turn markers, the way an engine renders a chat request before
// tokenizing it. With addGenerationPrompt the assistant header is appended so
// the prompt ends where the model starts writing. It is the built-in
// encodings' template; RenderChat uses a loaded model's own.
func ApplyChatTemplate(messages []Message, addGenerationPrompt bool) string {
	var b strings.Builder
	b.WriteString(BeginOfText)
	for _, m := range messages {
		writeHeader(&b, m.Role)
		b.WriteString(strings.TrimSpace(m.Content))
		b.WriteString(EndOfTurn)
	}
	if addGenerationPrompt {
		writeHeader(&b, "assistant")
	}
	return b.String()
}

func writeHeader(b *strings.Builder, role string) {
	b.WriteString(StartHeader)
	b.WriteString(role)
	b.WriteString(EndHeader)
	b.WriteString("\n\n")
}

// RenderChat renders messages with the tokenizer's chat template: the
// model's own for a loaded tokenizer (an error if it has none or the
// template fails, for example by raising an exception), ApplyChatTemplate
// for the built-in encodings.
func (t *Tokenizer) RenderChat(messages []Message, addGenerationPrompt bool) (string, error) {
	if t.hf == nil {
		return ApplyChatTemplate(messages, addGenerationPrompt), nil
	}
	if t.hf.template == nil {
		return "", errNoChatTemplate
	}
	return t.hf.template.render(messages, addGenerationPrompt)
}

// RenderContinuation renders messages so that the prompt ends inside the
// final (assistant) message, for continuing it (vLLM's
// continue_final_message): the rendering without a generation prompt, cut
// right after the final message's content.
func (t *Tokenizer) RenderContinuation(messages []Message) (string, error) {
	if t.hf == nil {
		return strings.TrimSuffix(ApplyChatTemplate(messages, false), EndOfTurn), nil
	}
	text, err := t.RenderChat(messages, false)
	if err != nil || len(messages) == 0 {
		return text, err
	}
	final := messages[len(messages)-1].Content
	at := strings.LastIndex(text, final)
	if at < 0 {
		final = strings.TrimSpace(final)
		at = strings.LastIndex(text, final)
	}
	if at < 0 {
		return "", errors.New("the chat template does not render the final message's content verbatim, so it cannot be continued")
	}
	return text[:at+len(final)], nil
}

// EncodeChat renders messages with RenderChat and encodes the result
// without adding special tokens (the template writes them), as vLLM does.
func (t *Tokenizer) EncodeChat(messages []Message, addGenerationPrompt bool) ([]int, error) {
	text, err := t.RenderChat(messages, addGenerationPrompt)
	if err != nil {
		return nil, err
	}
	return t.Encode(text), nil
}
