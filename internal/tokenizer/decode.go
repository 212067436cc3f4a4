package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeStep rewrites the token strings on their way back to text.
type decodeStep func(tokens []string) []string

type decoderJSON struct {
	Type           string            `json:"type"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        patternJSON       `json:"pattern"`
	Content        string            `json:"content"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
}

// newDecoder builds the decoder's steps; a nil list joins tokens with
// spaces, as the reference implementation does without a decoder.
func newDecoder(raw json.RawMessage) ([]decodeStep, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var j decoderJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, false, fmt.Errorf("decoder: %w", err)
	}
	switch j.Type {
	case "Sequence":
		var steps []decodeStep
		for _, r := range j.Decoders {
			s, _, err := newDecoder(r)
			if err != nil {
				return nil, false, err
			}
			steps = append(steps, s...)
		}
		return steps, true, nil
	case "ByteLevel":
		// Vocabulary entries are already raw bytes: join them and repair
		// what is not UTF-8.
		return []decodeStep{func(t []string) []string { return []string{validUTF8(strings.Join(t, ""))} }}, true, nil
	case "Fuse":
		return []decodeStep{func(t []string) []string { return []string{strings.Join(t, "")} }}, true, nil
	case "Replace":
		r, err := newReplacer(j.Pattern, j.Content)
		if err != nil {
			return nil, false, fmt.Errorf("decoder %w", err)
		}
		return []decodeStep{func(t []string) []string {
			for i := range t {
				t[i] = r(t[i])
			}
			return t
		}}, true, nil
	case "ByteFallback":
		return []decodeStep{byteFallbackDecode}, true, nil
	case "Strip":
		content, start, stop := j.Content, j.Start, j.Stop
		if utf8.RuneCountInString(content) != 1 {
			return nil, false, fmt.Errorf("decoder Strip: content %q is not one character", content)
		}
		return []decodeStep{func(t []string) []string {
			for i := range t {
				s := t[i]
				for k := 0; k < start && strings.HasPrefix(s, content); k++ {
					s = s[len(content):]
				}
				for k := 0; k < stop && strings.HasSuffix(s, content); k++ {
					s = s[:len(s)-len(content)]
				}
				t[i] = s
			}
			return t
		}}, true, nil
	case "Metaspace":
		rep := j.Replacement
		stripFirst := j.PrependScheme != "never"
		if j.PrependScheme == "" && j.AddPrefixSpace != nil {
			stripFirst = *j.AddPrefixSpace
		}
		return []decodeStep{func(t []string) []string {
			for i := range t {
				s := strings.ReplaceAll(t[i], rep, " ")
				if i == 0 && stripFirst {
					s = strings.TrimPrefix(s, " ")
				}
				t[i] = s
			}
			return t
		}}, true, nil
	}
	return nil, false, fmt.Errorf("decoder %q is not supported", j.Type)
}

// byteFallbackDecode turns runs of <0xXX> tokens back into the bytes they
// stand for; a run that is not UTF-8 becomes one U+FFFD per byte.
func byteFallbackDecode(tokens []string) []string {
	out := tokens[:0:0]
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := fallbackByte(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

func fallbackByte(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	return byte(v), err == nil
}

// validUTF8 replaces each byte that is not part of valid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
