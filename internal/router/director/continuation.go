package director

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// soFar is what the client received of a stream, read back from the kept
// chunks.
type soFar struct {
	id, created, model, object []byte
	text                       strings.Builder
	// tokens estimates the completion tokens received: one per chunk that
	// carried text (vLLM and SGLang stream one token per chunk unless
	// told otherwise).
	tokens int64
	// finish is the finish_reason already streamed ("" if none).
	finish string
	// unsupported says why the stream cannot be continued ("" if it can).
	unsupported string
}

// analyse reads the kept chunks.
func (s *streamState) analyse() *soFar {
	out := &soFar{}
	if s.overflow {
		out.unsupported = fmt.Sprintf("the stream is longer than the %d bytes the router keeps to continue it", maxKept)
		return out
	}
	if s.kept == nil {
		return out
	}
	for _, line := range bytes.Split(*s.kept, []byte{'\n'}) {
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		res := gjson.GetManyBytes(line, "id", "created", "model", "object", "choices")
		if out.id == nil && res[0].Exists() {
			out.id, out.created = []byte(res[0].Raw), []byte(res[1].Raw)
			out.model, out.object = []byte(res[2].Raw), []byte(res[3].Raw)
		}
		for _, ch := range res[4].Array() {
			if ch.Get("index").Int() != 0 {
				out.unsupported = "the response has several choices (n > 1)"
				return out
			}
			if lp := ch.Get("logprobs"); lp.Exists() && lp.Type != gjson.Null {
				out.unsupported = "the response carries logprobs"
				return out
			}
			var piece string
			if s.chat {
				d := ch.Get("delta")
				if d.Get("tool_calls").Exists() || d.Get("function_call").Exists() {
					out.unsupported = "the response streams tool calls"
					return out
				}
				if r := d.Get("reasoning_content"); r.String() != "" {
					out.unsupported = "the response streams reasoning content"
					return out
				}
				if r := d.Get("reasoning"); r.String() != "" {
					out.unsupported = "the response streams reasoning content"
					return out
				}
				piece = d.Get("content").String()
			} else {
				piece = ch.Get("text").String()
			}
			if piece != "" {
				out.text.WriteString(piece)
				out.tokens++
			}
			if f := ch.Get("finish_reason"); f.Type == gjson.String && f.Str != "" {
				out.finish = f.Str
			}
		}
	}
	return out
}

// continuationBody is the request that continues a stream on another pod:
// the original request with the text already streamed as a partial answer
// (chat: a final assistant message with continue_final_message and
// add_generation_prompt false; completions: the prompt followed by the
// text), its token limits reduced by what was streamed, the upstream model,
// and the usage chunk asked for. remaining is false when the token limit is
// already reached.
func continuationBody(body []byte, chat bool, model, partial string, streamed int64) (out []byte, remaining bool, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, false, fmt.Errorf("request body: %v", err)
	}
	if reason := notContinuable(m, chat); reason != "" {
		return nil, false, fmt.Errorf("%s", reason)
	}
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		m[k] = b
	}
	set("model", model)
	set("stream", true)
	set("stream_options", map[string]bool{"include_usage": true})
	if _, ok := m["echo"]; ok {
		set("echo", false) // the first attempt echoed the prompt already
	}
	remaining = true
	limited := false
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("%s: want an integer, got %s", k, v)
		}
		limited = true
		if n-streamed < 1 {
			remaining = false
		}
		set(k, max(1, n-streamed))
	}
	if !chat && !limited {
		// The completions API generates 16 tokens when not told.
		const completionsDefault = 16
		if completionsDefault-streamed < 1 {
			remaining = false
		}
		set("max_tokens", max(1, completionsDefault-streamed))
	}
	if v, ok := m["min_tokens"]; ok {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			set("min_tokens", max(0, n-streamed))
		}
	}
	if partial != "" {
		if chat {
			if err := continueChat(m, partial); err != nil {
				return nil, false, err
			}
		} else if err := continuePrompt(m, partial); err != nil {
			return nil, false, err
		}
	}
	out, err = json.Marshal(m)
	return out, remaining, err
}

// notContinuable says why a request cannot be continued from its text
// ("" if it can).
func notContinuable(m map[string]json.RawMessage, chat bool) string {
	num := func(k string) (int64, bool) {
		v, ok := m[k]
		if !ok || string(v) == "null" {
			return 0, false
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	}
	if n, ok := num("n"); ok && n != 1 {
		return "the request asks for several choices (n > 1)"
	}
	if n, ok := num("best_of"); ok && n > 1 {
		return "the request asks for best_of > 1"
	}
	if v, ok := m["logprobs"]; ok && string(v) != "null" && string(v) != "false" {
		return "the request asks for logprobs"
	}
	if v, ok := m["response_format"]; ok {
		if t := gjson.GetBytes(v, "type").String(); t != "" && t != "text" {
			return "the request constrains the output format (response_format " + t + ")"
		}
	}
	for _, k := range []string{"guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs", "regex", "ebnf", "json_schema"} {
		if v, ok := m[k]; ok && string(v) != "null" {
			return "the request constrains the output (" + k + ")"
		}
	}
	if !chat {
		if v, ok := m["suffix"]; ok && string(v) != "null" {
			return "the request has a suffix"
		}
	}
	return ""
}

// continueChat appends the partial answer as the final assistant message,
// or extends that message when the client already asked to continue it.
func continueChat(m map[string]json.RawMessage, partial string) error {
	var msgs []json.RawMessage
	if err := json.Unmarshal(m["messages"], &msgs); err != nil || len(msgs) == 0 {
		return fmt.Errorf("messages: want a non-empty list")
	}
	if gjson.GetBytes(m["continue_final_message"], "@this").Bool() && len(msgs) > 0 &&
		gjson.GetBytes(msgs[len(msgs)-1], "role").String() == "assistant" {
		last := msgs[len(msgs)-1]
		content := gjson.GetBytes(last, "content")
		if content.Type != gjson.String || content.Index <= 0 {
			return fmt.Errorf("the final assistant message to continue has no text content")
		}
		v, _ := json.Marshal(content.Str + partial)
		edited := append([]byte(nil), last[:content.Index]...)
		edited = append(edited, v...)
		msgs[len(msgs)-1] = append(edited, last[content.Index+len(content.Raw):]...)
	} else {
		msg, _ := json.Marshal(struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}{"assistant", partial})
		msgs = append(msgs, msg)
	}
	m["messages"], _ = json.Marshal(msgs)
	m["continue_final_message"] = json.RawMessage("true")
	m["add_generation_prompt"] = json.RawMessage("false")
	return nil
}

// continuePrompt appends the partial answer to a text prompt.
func continuePrompt(m map[string]json.RawMessage, partial string) error {
	var s string
	if err := json.Unmarshal(m["prompt"], &s); err == nil {
		m["prompt"], _ = json.Marshal(s + partial)
		return nil
	}
	var list []string
	if err := json.Unmarshal(m["prompt"], &list); err == nil && len(list) == 1 {
		m["prompt"], _ = json.Marshal([]string{list[0] + partial})
		return nil
	}
	return fmt.Errorf("the prompt is not one text (token IDs or several prompts cannot be continued)")
}
