package tokenizer

import "strings"

// Message is one chat turn, already flattened to text (multi-part content is
// joined by the caller).
type Message struct {
	Role    string
	Content string
}

// ApplyChatTemplate flattens messages into one prompt string with Llama 3's
// header/turn markers, the way an engine renders a chat request before
// tokenizing it. With addGenerationPrompt the assistant header is appended so
// the prompt ends where the model starts writing.
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

// EncodeChat renders messages with ApplyChatTemplate and encodes the result.
func (t *Tokenizer) EncodeChat(messages []Message, addGenerationPrompt bool) []int {
	return t.Encode(ApplyChatTemplate(messages, addGenerationPrompt))
}
