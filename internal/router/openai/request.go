// Package openai parses and rewrites OpenAI-style request bodies without
// copying them, extracts usage from responses, and renders router errors as
// OpenAI-style JSON.
package openai

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unsafe"
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
	prompt        span // the messages/prompt/input value, or empty
	streamOptions span // the stream_options value, or empty
	includeUsage  span // stream_options.include_usage value, or empty
}

type span struct{ start, end int }

func (s span) ok() bool { return s.end > s.start }

// Parse reads body, which must be exactly one JSON object with a string
// "model". It keeps at most promptLimit bytes of flattened prompt text.
//
// The body is scanned once: the scan validates it and records where the
// top-level members are. Only the prompt prefix is read again, up to
// promptLimit bytes of output.
func Parse(body []byte, promptLimit int) (*Request, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("request body is empty")
	}
	s := scanner{b: body}
	s.ws()
	if s.i >= len(body) || body[s.i] != '{' {
		if s.value() && s.atEnd() {
			return nil, fmt.Errorf("request body must be a JSON object")
		}
		return nil, errInvalid
	}
	r := &Request{open: s.i + 1}
	const (
		fModel = 1 << iota
		fStream
		fSO
		fMessages
		fPrompt
		fInput
	)
	var err error
	seen := 0
	prompt := span{}
	s.i++
	s.ws()
	if s.i < len(body) && body[s.i] == '}' {
		s.i++
	} else {
		for {
			s.ws()
			if s.i >= len(body) || body[s.i] != '"' {
				return nil, errInvalid
			}
			ks := s.i
			esc, ok := s.str()
			if !ok {
				return nil, errInvalid
			}
			ke := s.i
			if !s.colon() {
				return nil, errInvalid
			}
			v := span{s.i, 0}
			if !s.value() {
				return nil, errInvalid
			}
			v.end = s.i
			if err == nil {
				flag := 0
				key := keyName(body, ks, ke, esc)
				switch key {
				case "model":
					flag = fModel
					if body[v.start] != '"' {
						err = fmt.Errorf(`"model" must be a string`)
						break
					}
					// A copy: the body is a pooled buffer, and the model
					// ends up in metric labels and logs that outlive the
					// request.
					r.Model = string(appendStr(nil, body, v.start, len(body)))
					r.model = v
				case "stream":
					flag = fStream
					r.Stream = body[v.start] == 't'
				case "stream_options":
					flag = fSO
					r.streamOptions = v
					if body[v.start] == '{' {
						sub := scanner{b: body, i: v.start}
						sub.members(func(k string, _, at int) bool {
							if k == "include_usage" {
								r.IncludeUsage = body[at] == 't'
								end := scanner{b: body, i: at}
								end.value()
								r.includeUsage = span{at, end.i}
							}
							return true
						})
					}
				case "messages", "prompt", "input":
					switch key {
					case "messages":
						flag = fMessages
					case "prompt":
						flag = fPrompt
					default:
						flag = fInput
					}
					if seen&(fMessages|fPrompt|fInput) == 0 {
						r.PromptBytes = v.end - v.start
						prompt = v
					}
				}
				if err == nil && flag != 0 {
					if seen&flag != 0 {
						err = fmt.Errorf("duplicate key %q in request body", key)
					}
					seen |= flag
				}
			}
			s.ws()
			if s.i >= len(body) {
				return nil, errInvalid
			}
			if body[s.i] == ',' {
				s.i++
				continue
			}
			if body[s.i] != '}' {
				return nil, errInvalid
			}
			s.i++
			break
		}
	}
	if !s.atEnd() {
		return nil, errInvalid
	}
	if err != nil {
		return nil, err
	}
	if seen&fModel == 0 || r.Model == "" {
		return nil, fmt.Errorf(`request body has no "model"`)
	}
	r.prompt = prompt
	if promptLimit > 0 {
		r.Prompt = r.FlattenPrompt(body, promptLimit)
	}
	return r, nil
}

// PromptJSON is the raw JSON value of the prompt member of body (messages,
// prompt or input), which must be the body r was parsed from; nil when the
// body has none.
func (r *Request) PromptJSON(body []byte) []byte {
	if !r.prompt.ok() {
		return nil
	}
	return body[r.prompt.start:r.prompt.end]
}

// FlattenPrompt renders at most limit bytes of the prompt of body, which
// must be the body r was parsed from. Parse keeps a bounded prefix; plugins
// that need the whole prompt render it with this only when they use it.
func (r *Request) FlattenPrompt(body []byte, limit int) []byte {
	if !r.prompt.ok() || limit <= 0 {
		return nil
	}
	f := flattener{b: body, limit: limit, hint: r.PromptBytes + 16}
	f.flatten(r.prompt.start)
	return f.out
}

var errInvalid = errors.New("request body is not valid JSON")

// keyName is the member name whose string token spans body[ks:ke] (quotes
// included). Without escapes it aliases body and must not be kept.
func keyName(body []byte, ks, ke int, esc bool) string {
	if esc {
		return string(appendStr(nil, body, ks, len(body)))
	}
	return unsafe.String(&body[ks+1], ke-ks-2)
}

// flattener renders messages ("role: content\n" each) or a prompt string
// into at most limit bytes. It reads a body already validated by Parse and
// stops as soon as the output is full.
type flattener struct {
	b     []byte
	out   []byte
	limit int
	hint  int // expected output size
}

func (f *flattener) full() bool { return len(f.out) >= f.limit }

// grow allocates the output: flattened text is rarely longer than the raw
// prompt value (quotes, keys and braces go), so that size usually suffices.
func (f *flattener) grow() {
	if f.out == nil {
		f.out = make([]byte, 0, min(f.limit, f.hint))
	}
}

func (f *flattener) add(s []byte) {
	f.grow()
	room := f.limit - len(f.out)
	if room <= 0 {
		return
	}
	if len(s) > room {
		s = s[:room]
	}
	f.out = append(f.out, s...)
}

// str adds the string whose opening quote is at b[p].
func (f *flattener) str(p int) {
	f.grow()
	f.out = appendStr(f.out, f.b, p, f.limit-len(f.out))
}

func (f *flattener) flatten(p int) {
	switch f.b[p] {
	case '"':
		f.str(p)
	case '[':
		s := scanner{b: f.b, i: p, trusted: true}
		s.elements(func(v int) bool {
			switch f.b[v] {
			case '"': // prompt: ["a", "b"]
				f.str(v)
				s.i = v
				s.value()
			case '{':
				f.message(&s)
			default: // token ids
				s.value()
				f.add(f.b[v:s.i])
			}
			return !f.full()
		})
	}
}

// message renders the chat message object at s.i and leaves s.i after it
// unless the output is full.
func (f *flattener) message(s *scanner) {
	p := s.i
	role, content := -1, -1
	s.members(func(k string, _, v int) bool {
		switch {
		case k == "role" && role < 0:
			role = v
		case k == "content" && content < 0:
			content = v
		}
		return role < 0 || content < 0
	})
	if role >= 0 && f.b[role] == '"' {
		f.str(role)
	} else {
		f.grow()
	}
	f.add([]byte(": "))
	if content >= 0 {
		switch f.b[content] {
		case '"':
			f.str(content)
		case '[':
			c := scanner{b: f.b, i: content, trusted: true}
			c.elements(func(v int) bool {
				text := -1
				if f.b[v] == '{' {
					c.members(func(k string, _, tv int) bool {
						if k == "text" {
							text = tv
							return false
						}
						return true
					})
				}
				if text >= 0 && f.b[text] == '"' {
					f.str(text)
				} else {
					f.grow()
				}
				if f.full() {
					return false
				}
				c.i = v
				c.value()
				return true
			})
		}
	}
	f.add([]byte("\n"))
	if !f.full() {
		s.i = p
		s.value()
	}
}

// Rewrite describes the changes to make to a body.
type Rewrite struct {
	// Model replaces the body's model when non-empty.
	Model string
	// ForceUsage asks a streaming engine for the usage chunk. It is ignored
	// when Remove or Set name "stream" or "stream_options".
	ForceUsage bool
	// Remove drops these top-level members ("model" is never removed).
	Remove []string
	// Set replaces these top-level members' values, adding the missing ones.
	Set []Member
}

// Member is a top-level body member to set.
type Member struct {
	Name string
	// Value is the member's JSON value, inserted as is.
	Value []byte
	// IfPresent sets the member only when the body already has it.
	IfPresent bool
}

// Splice returns the body as segments (aliasing body where unchanged) with
// the rewrite applied, and its total length.
func (r *Request) Splice(body []byte, rw Rewrite) ([][]byte, int) {
	if len(rw.Remove) > 0 || len(rw.Set) > 0 {
		return r.spliceMembers(body, rw)
	}
	var edits [2]edit
	n := 0
	if e, ok := r.modelEdit(rw); ok {
		edits[n] = e
		n++
	}
	if e, ok := r.usageEdit(body, rw); ok {
		edits[n] = e
		n++
	}
	return applyEdits(body, edits[:n])
}

type edit struct {
	s   span
	rep []byte
}

func (r *Request) modelEdit(rw Rewrite) (edit, bool) {
	if rw.Model != "" && rw.Model != r.Model && r.model.ok() {
		return edit{r.model, strconv.AppendQuote(nil, rw.Model)}, true
	}
	return edit{}, false
}

func (r *Request) usageEdit(body []byte, rw Rewrite) (edit, bool) {
	if !rw.ForceUsage || !r.Stream || r.IncludeUsage {
		return edit{}, false
	}
	switch {
	case r.includeUsage.ok():
		return edit{r.includeUsage, []byte("true")}, true
	case r.streamOptions.ok() && body[r.streamOptions.start] == '{':
		at := r.streamOptions.start + 1
		rep := `"include_usage":true`
		if !isEmptyObject(body[r.streamOptions.start:r.streamOptions.end]) {
			rep += ","
		}
		return edit{span{at, at}, []byte(rep)}, true
	case r.streamOptions.ok():
		return edit{r.streamOptions, []byte(`{"include_usage":true}`)}, true
	default:
		return edit{span{r.open, r.open}, []byte(`"stream_options":{"include_usage":true},`)}, true
	}
}

// applyEdits splices non-overlapping edits into body.
func applyEdits(body []byte, edits []edit) ([][]byte, int) {
	if len(edits) == 0 {
		return [][]byte{body}, len(body)
	}
	slices.SortStableFunc(edits, func(a, b edit) int { return a.s.start - b.s.start })
	segs := make([][]byte, 0, 2*len(edits)+1)
	pos, total := 0, 0
	for _, e := range edits {
		if e.s.start > pos {
			segs = append(segs, body[pos:e.s.start])
		}
		if len(e.rep) > 0 {
			segs = append(segs, e.rep)
		}
		total += e.s.start - pos + len(e.rep)
		pos = e.s.end
	}
	segs = append(segs, body[pos:])
	total += len(body) - pos
	return segs, total
}

// topMember is where one top-level member lies in the body.
type topMember struct {
	name     string
	keyStart int // the key's opening quote
	value    span
}

// spliceMembers is the general rewrite: it walks the (validated) body's
// members once, which the common rewrite does not need to.
func (r *Request) spliceMembers(body []byte, rw Rewrite) ([][]byte, int) {
	var ms []topMember
	s := scanner{b: body, i: r.open - 1, trusted: true}
	s.members(func(k string, ks, v int) bool {
		end := scanner{b: body, i: v, trusted: true}
		end.value()
		ms = append(ms, topMember{name: strings.Clone(k), keyStart: ks, value: span{v, end.i}})
		return true
	})
	touched := func(name string) bool {
		return slices.Contains(rw.Remove, name) || slices.ContainsFunc(rw.Set, func(m Member) bool { return m.Name == name })
	}
	var edits []edit
	if e, ok := r.modelEdit(rw); ok {
		edits = append(edits, e)
	}
	if !touched("stream") && !touched("stream_options") {
		if e, ok := r.usageEdit(body, rw); ok {
			edits = append(edits, e)
		}
	}
	removed := make([]bool, len(ms))
	present := map[string]int{}
	for i, m := range ms {
		present[m.name] = i
		removed[i] = m.name != "model" && slices.Contains(rw.Remove, m.name)
	}
	for _, m := range rw.Set {
		if i, ok := present[m.Name]; ok {
			if !removed[i] && m.Name != "model" {
				edits = append(edits, edit{ms[i].value, m.Value})
			}
			continue
		}
		if m.IfPresent {
			continue
		}
		rep := strconv.AppendQuote(nil, m.Name)
		rep = append(rep, ':')
		rep = append(rep, m.Value...)
		rep = append(rep, ',') // "model" always follows
		edits = append(edits, edit{span{r.open, r.open}, rep})
	}
	// Each run of removed members goes with the comma after it, or before
	// it when it ends the object.
	for a := 0; a < len(ms); a++ {
		if !removed[a] {
			continue
		}
		b := a
		for b+1 < len(ms) && removed[b+1] {
			b++
		}
		switch {
		case b+1 < len(ms):
			edits = append(edits, edit{span{ms[a].keyStart, ms[b+1].keyStart}, nil})
		case a > 0:
			edits = append(edits, edit{span{ms[a-1].value.end, ms[b].value.end}, nil})
		default:
			edits = append(edits, edit{span{ms[a].keyStart, ms[b].value.end}, nil})
		}
		a = b
	}
	return applyEdits(body, edits)
}

func isEmptyObject(b []byte) bool {
	return len(bytes.TrimSpace(b[1:len(b)-1])) == 0
}
