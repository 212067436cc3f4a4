package sim

import (
	"strings"

	"github.com/kthena/kthena/internal/tokenizer"
)

// Continuing a partial answer, as vLLM's chat API does with
// continue_final_message: the final message must be the assistant's, it is
// rendered without its end-of-turn marker and without a new assistant
// header, so generation continues that message. The tokens already given
// count toward the context (they are part of the prompt); max_tokens
// bounds the new tokens only. The completions form needs nothing special:
// the prompt is the original one followed by the partial text.

// errBothGenerationFlags is vLLM's validation message for the two
// exclusive flags.
const errBothGenerationFlags = "Cannot set both `continue_final_message` and `add_generation_prompt` to True."

// chatPrompt renders a chat request's prompt: with a generation prompt
// (a new assistant turn), without one, or continuing the final assistant
// message. It returns the text echo mode repeats: the last user message,
// or, when continuing, what of it the partial answer has not repeated yet.
func (e *Engine) chatPrompt(req *completionRequest, msgs []tokenizer.Message) ([]int, string, *apiError) {
	cont := req.ContinueFinalMessage != nil && *req.ContinueFinalMessage
	addGen := req.AddGenerationPrompt == nil || *req.AddGenerationPrompt
	echo := msgs[len(msgs)-1].Content
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			echo = msgs[i].Content
			break
		}
	}
	if !cont {
		ids, err := e.tok.EncodeChat(msgs, addGen)
		if err != nil {
			return nil, "", badRequest(err.Error())
		}
		return ids, echo, nil
	}
	if req.AddGenerationPrompt != nil && *req.AddGenerationPrompt {
		return nil, "", badRequest(errBothGenerationFlags)
	}
	last := msgs[len(msgs)-1]
	if last.Role != "assistant" {
		return nil, "", &apiError{Status: 400, Type: "BadRequestError", Param: "messages",
			Message: "continue_final_message requires the final message to be the assistant's (got role " + last.Role + ")."}
	}
	text, err := e.tok.RenderContinuation(msgs)
	if err != nil {
		return nil, "", badRequest(err.Error())
	}
	if rest, ok := strings.CutPrefix(echo, last.Content); ok && rest != "" {
		echo = rest
	}
	return e.tok.Encode(text), echo, nil
}
