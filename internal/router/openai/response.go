package openai

import (
	"bytes"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Usage is token usage reported by an engine.
type Usage struct {
	PromptTokens, CompletionTokens int64
	Found                          bool
}

// UsageOf reads "usage" from a JSON object (a response or a stream chunk).
func UsageOf(b []byte) Usage {
	if len(b) == 0 || nullUsage(b) {
		return Usage{}
	}
	u := gjson.Get(unsafe.String(unsafe.SliceData(b), len(b)), "usage")
	if !u.IsObject() {
		return Usage{}
	}
	return Usage{PromptTokens: u.Get("prompt_tokens").Int(), CompletionTokens: u.Get("completion_tokens").Int(), Found: true}
}

var (
	usageKey      = []byte(`"usage"`)
	nullUsageTail = []byte(`"usage":null}`)
)

// nullUsage reports whether the first "usage" in b is the object's last
// member and null, as in every chunk but the last of a stream with
// include_usage: such chunks need no JSON parse.
func nullUsage(b []byte) bool {
	i := bytes.Index(b, usageKey)
	return i > 0 && i == len(b)-len(nullUsageTail) && bytes.HasSuffix(b, nullUsageTail) && (b[i-1] == ',' || b[i-1] == '{')
}

// SSEData returns the payload of an SSE "data:" line (without the line
// ending) and whether the line is one.
func SSEData(line []byte) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte("data:")) {
		return nil, false
	}
	d := bytes.TrimSpace(line[5:])
	return d, true
}

// IsUsageOnlyChunk reports whether a stream chunk carries usage and no
// choices (the extra chunk that include_usage adds).
func IsUsageOnlyChunk(d []byte) bool {
	if len(d) == 0 || d[0] != '{' {
		return false
	}
	js := unsafe.String(unsafe.SliceData(d), len(d))
	res := gjson.GetMany(js, "usage", "choices")
	if !res[0].IsObject() {
		return false
	}
	c := res[1]
	return !c.Exists() || (c.IsArray() && len(c.Array()) == 0)
}
