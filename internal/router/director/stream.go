package director

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/kthena/kthena/internal/router/openai"
)

// streamState is what the router keeps of a streamed chat or completions
// response from a ModelServer's engine, so that the stream can be continued
// on another pod when the engine fails after its first byte (migrate.go).
// It lives inside the call: tracking a stream allocates nothing once the
// pool of kept buffers is warm.
type streamState struct {
	// on: the response is tracked (a streamed engine request).
	on   bool
	chat bool
	// kept holds the payload of every data chunk the client received
	// (after rewriting), one per line. Nil until the first chunk.
	kept *[]byte
	// overflow: the stream outgrew maxKept; it cannot be continued.
	overflow bool
	// started: a data chunk reached the client (the idle timeout between
	// chunks applies from then on).
	started bool
	// done: [DONE] reached the client.
	done bool
	// cont is set while a continuation is relayed.
	cont *continuation
}

// continuation is how the chunks of a continuation are spliced into the
// client's stream.
type continuation struct {
	// id, created, model and object are the raw JSON values of the first
	// attempt's chunks (empty when the first attempt sent none: the
	// continuation's own are kept then).
	id, created, model, object []byte
	// streamed is the completion tokens the client received before this
	// continuation was sent.
	streamed int64
	// includeUsage: the client asked for the usage chunk.
	includeUsage bool
	// usage is what the continuation's engine reported.
	usage openai.Usage
}

// maxKept bounds what one stream keeps; a longer stream cannot migrate.
const maxKept = 4 << 20

var keptPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// keep records the payload of a chunk the client received.
func (s *streamState) keep(data []byte) {
	if s.overflow {
		return
	}
	if s.kept == nil {
		s.kept = keptPool.Get().(*[]byte)
	}
	if len(*s.kept)+len(data)+1 > maxKept {
		s.overflow = true
		return
	}
	b := append(*s.kept, data...)
	*s.kept = append(b, '\n')
}

// release returns the kept buffer to the pool.
func (s *streamState) release() {
	if s.kept == nil {
		return
	}
	if cap(*s.kept) <= 1<<20 {
		*s.kept = (*s.kept)[:0]
		keptPool.Put(s.kept)
	}
	s.kept = nil
}

var errorKey = []byte(`"error"`)

// isErrorEvent reports whether a chunk is an engine's mid-stream error
// event ({"error": {...}} instead of choices).
func isErrorEvent(data []byte) bool {
	if len(data) == 0 || data[0] != '{' || !bytes.Contains(data, errorKey) {
		return false
	}
	js := unsafe.String(unsafe.SliceData(data), len(data))
	res := gjson.GetMany(js, "error", "choices")
	return res[0].Exists() && !res[1].Exists()
}

// errorMessage is the message of an error event.
func errorMessage(data []byte) string {
	m := gjson.GetBytes(data, "error.message").String()
	if m == "" {
		m = string(data)
	}
	return m
}

// rewrite turns a continuation's chunk into one of the client's stream:
// the first attempt's id, created and model, no second role delta, no
// usage-only chunk (the router writes one at the end). It returns nil when
// the chunk is dropped.
func (k *continuation) rewrite(data []byte, chat bool) []byte {
	if len(data) == 0 || data[0] != '{' {
		return data
	}
	js := unsafe.String(unsafe.SliceData(data), len(data))
	res := gjson.GetMany(js, "id", "created", "model", "object", "choices", "usage")
	if res[5].IsObject() {
		if u := openai.UsageOf(data); u.Found {
			k.usage = u
		}
		if c := res[4]; !c.Exists() || (c.IsArray() && len(c.Array()) == 0) {
			return nil
		}
	}
	if k.id == nil {
		// The first attempt sent no chunk: the continuation's are the
		// stream's own.
		k.id, k.created = []byte(res[0].Raw), []byte(res[1].Raw)
		k.model, k.object = []byte(res[2].Raw), []byte(res[3].Raw)
		return data
	}
	if chat {
		ch := res[4].Get("0")
		if ch.Get("delta.role").Exists() && ch.Get("delta.content").String() == "" &&
			!ch.Get("delta.tool_calls").Exists() && ch.Get("finish_reason").Type == gjson.Null {
			return nil
		}
	}
	type repl struct {
		at, n int
		v     []byte
	}
	var edits [3]repl
	n := 0
	for i, v := range [][]byte{k.id, k.created, k.model} {
		if r := res[i]; r.Exists() && r.Index > 0 && len(v) > 0 && r.Raw != string(v) {
			edits[n] = repl{r.Index, len(r.Raw), v}
			n++
		}
	}
	if n == 0 {
		return data
	}
	out := make([]byte, 0, len(data)+64)
	pos := 0
	// Members appear in the engine's order; apply edits left to right.
	for n > 0 {
		first := 0
		for i := 1; i < n; i++ {
			if edits[i].at < edits[first].at {
				first = i
			}
		}
		e := edits[first]
		out = append(out, data[pos:e.at]...)
		out = append(out, e.v...)
		pos = e.at + e.n
		edits[first] = edits[n-1]
		n--
	}
	return append(out, data[pos:]...)
}

// usageChunk renders the stream's one usage chunk.
func (k *continuation) usageChunk(u openai.Usage) []byte {
	b := []byte(`data: {"id":`)
	b = append(b, orNull(k.id)...)
	b = append(b, `,"object":`...)
	b = append(b, orNull(k.object)...)
	b = append(b, `,"created":`...)
	b = append(b, orNull(k.created)...)
	b = append(b, `,"model":`...)
	b = append(b, orNull(k.model)...)
	b = append(b, `,"choices":[],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, u.CompletionTokens, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, u.PromptTokens+u.CompletionTokens, 10)
	return append(b, "}}\n\n"...)
}

func orNull(v []byte) []byte {
	if len(v) == 0 {
		return []byte("null")
	}
	return v
}

// total is the usage the client is told: the continuation's prompt held
// the text already streamed, which is output, not input.
func (k *continuation) total() openai.Usage {
	u := k.usage
	return openai.Usage{PromptTokens: max(0, u.PromptTokens-k.streamed), CompletionTokens: u.CompletionTokens + k.streamed, Found: u.Found}
}

// sseError renders an OpenAI-style error as an SSE event: how a stream
// that cannot go on ends, so that the client sees an error and not a cut.
func sseError(typ, msg string, code int) []byte {
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    int     `json:"code"`
	}
	b, _ := json.Marshal(struct {
		Error detail `json:"error"`
	}{detail{msg, typ, nil, code}})
	out := append([]byte("data: "), b...)
	return append(out, "\n\n"...)
}
