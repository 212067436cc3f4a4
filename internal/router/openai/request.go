// Package openai parses and rewrites OpenAI-style request bodies without
// copying them, extracts usage from responses, and renders router errors as
// OpenAI-style JSON.
package openai

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Request is what the router reads from a body. Spans index into the body.
type Request struct {
	Model string
	// Stream is the body's "stream".
	Stream bool
	// IncludeUsage is the client's stream_options.include_usage.
	IncludeUsage bool
	// Prompt is the flattened prompt text, at most the limit given to
	// Parse; it may alias the body.
	Prompt []byte
	// PromptBytes is the raw size of messages/prompt/input.
	PromptBytes int

	open          int  // index just after the top-level '{'
	model         span // the model value
	streamOptions span // the stream_options value, or empty
	includeUsage  span // stream_options.include_usage value, or empty
}

type span struct{ start, end int }

func (s span) ok() bool { return s.end > s.start }

// Parse reads body, which must be exactly one JSON object with a string
// "model". It keeps at most promptLimit bytes of flattened prompt text.
func Parse(body []byte, promptLimit int) (*Request, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("request body is empty")
	}
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("request body is not valid JSON")
	}
	js := unsafe.String(unsafe.SliceData(body), len(body))
	root := gjson.Parse(js)
	if !root.IsObject() {
		return nil, fmt.Errorf("request body must be a JSON object")
	}
	r := &Request{open: bytes.IndexByte(body, '{') + 1}
	var err error
	seen := 0
	const (
		fModel = 1 << iota
		fStream
		fSO
		fMessages
		fPrompt
		fInput
	)
	root.ForEach(func(k, v gjson.Result) bool {
		flag := 0
		switch k.Str {
		case "model":
			flag = fModel
			if v.Type != gjson.String {
				err = fmt.Errorf(`"model" must be a string`)
				return false
			}
			// Cloned: the body is a pooled buffer, and the model ends up in
			// metric labels and logs that outlive the request.
			r.Model = strings.Clone(v.Str)
			r.model = spanOf(js, v.Raw)
		case "stream":
			flag = fStream
			r.Stream = v.Type == gjson.True
		case "stream_options":
			flag = fSO
			r.streamOptions = spanOf(js, v.Raw)
			if v.IsObject() {
				v.ForEach(func(k2, v2 gjson.Result) bool {
					if k2.Str == "include_usage" {
						r.IncludeUsage = v2.Type == gjson.True
						r.includeUsage = spanOf(js, v2.Raw)
					}
					return true
				})
			}
		case "messages", "prompt", "input":
			switch k.Str {
			case "messages":
				flag = fMessages
			case "prompt":
				flag = fPrompt
			default:
				flag = fInput
			}
			if seen&(fMessages|fPrompt|fInput) == 0 {
				r.PromptBytes = len(v.Raw)
				r.Prompt = flatten(v, promptLimit)
			}
		default:
			return true
		}
		if seen&flag != 0 {
			err = fmt.Errorf("duplicate key %q in request body", k.Str)
			return false
		}
		seen |= flag
		return true
	})
	if err != nil {
		return nil, err
	}
	if seen&fModel == 0 || r.Model == "" {
		return nil, fmt.Errorf(`request body has no "model"`)
	}
	return r, nil
}

func spanOf(js, raw string) span {
	if raw == "" {
		return span{}
	}
	off := int(uintptr(unsafe.Pointer(unsafe.StringData(raw))) - uintptr(unsafe.Pointer(unsafe.StringData(js))))
	if off < 0 || off+len(raw) > len(js) {
		return span{}
	}
	return span{off, off + len(raw)}
}

// flatten renders messages ("role: content\n" each) or a prompt string into
// at most limit bytes.
func flatten(v gjson.Result, limit int) []byte {
	if limit <= 0 {
		return nil
	}
	switch {
	case v.Type == gjson.String:
		return clip(v.Str, limit, nil)
	case v.IsArray():
		var out []byte
		v.ForEach(func(_, m gjson.Result) bool {
			switch {
			case m.Type == gjson.String: // prompt: ["a", "b"]
				out = clip(m.Str, limit, out)
			case m.IsObject():
				out = clip(m.Get("role").Str, limit, out)
				out = clip(": ", limit, out)
				c := m.Get("content")
				if c.Type == gjson.String {
					out = clip(c.Str, limit, out)
				} else if c.IsArray() {
					c.ForEach(func(_, part gjson.Result) bool {
						out = clip(part.Get("text").Str, limit, out)
						return len(out) < limit
					})
				}
				out = clip("\n", limit, out)
			default: // token ids
				out = clip(m.Raw, limit, out)
			}
			return len(out) < limit
		})
		return out
	}
	return nil
}

func clip(s string, limit int, out []byte) []byte {
	room := limit - len(out)
	if room <= 0 {
		return out
	}
	if len(s) > room {
		s = s[:room]
	}
	if out == nil {
		out = make([]byte, 0, min(limit, 4096))
	}
	return append(out, s...)
}

// Rewrite describes the changes to make to a body.
type Rewrite struct {
	// Model replaces the body's model when non-empty.
	Model string
	// ForceUsage asks a streaming engine for the usage chunk.
	ForceUsage bool
}

// Splice returns the body as segments (aliasing body where unchanged) with
// the rewrite applied, and its total length.
func (r *Request) Splice(body []byte, rw Rewrite) ([][]byte, int) {
	type edit struct {
		s   span
		rep []byte
	}
	var edits [3]edit
	n := 0
	if rw.Model != "" && rw.Model != r.Model && r.model.ok() {
		edits[n] = edit{r.model, strconv.AppendQuote(nil, rw.Model)}
		n++
	}
	if rw.ForceUsage && r.Stream && !r.IncludeUsage {
		switch {
		case r.includeUsage.ok():
			edits[n] = edit{r.includeUsage, []byte("true")}
		case r.streamOptions.ok() && body[r.streamOptions.start] == '{':
			at := r.streamOptions.start + 1
			rep := `"include_usage":true`
			if !isEmptyObject(body[r.streamOptions.start:r.streamOptions.end]) {
				rep += ","
			}
			edits[n] = edit{span{at, at}, []byte(rep)}
		case r.streamOptions.ok():
			edits[n] = edit{r.streamOptions, []byte(`{"include_usage":true}`)}
		default:
			edits[n] = edit{span{r.open, r.open}, []byte(`"stream_options":{"include_usage":true},`)}
		}
		n++
	}
	if n == 0 {
		return [][]byte{body}, len(body)
	}
	if n == 2 && edits[1].s.start < edits[0].s.start {
		edits[0], edits[1] = edits[1], edits[0]
	}
	segs := make([][]byte, 0, 2*n+1)
	pos, total := 0, 0
	for _, e := range edits[:n] {
		segs = append(segs, body[pos:e.s.start], e.rep)
		total += e.s.start - pos + len(e.rep)
		pos = e.s.end
	}
	segs = append(segs, body[pos:])
	total += len(body) - pos
	return segs, total
}

func isEmptyObject(b []byte) bool {
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}
