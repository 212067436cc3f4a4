package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a part of the input on its way to the BPE model. atStart tells
// whether it begins the whole input (Metaspace's "first" prepend scheme
// depends on it).
type piece struct {
	text    string
	atStart bool
}

// preTokenizeStep splits (and may rewrite) pieces, appending the results to
// out.
type preTokenizeStep interface {
	apply(in []piece, out []piece) []piece
}

type preTokenizerJSON struct {
	Type             string            `json:"type"`
	Pretokenizers    []json.RawMessage `json:"pretokenizers"`
	Pattern          patternJSON       `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Replacement      string            `json:"replacement"`
	PrependScheme    string            `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
}

// gpt2Pattern is the split ByteLevel applies itself when use_regex is set.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// newPreTokenizer builds the steps of a pre_tokenizer; byteLevel reports
// whether it contains a ByteLevel step (the model then works on bytes).
func newPreTokenizer(raw json.RawMessage) (steps []preTokenizeStep, byteLevel bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var j preTokenizerJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, false, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch j.Type {
	case "Sequence":
		for _, r := range j.Pretokenizers {
			s, bl, err := newPreTokenizer(r)
			if err != nil {
				return nil, false, err
			}
			steps = append(steps, s...)
			byteLevel = byteLevel || bl
		}
		return steps, byteLevel, nil
	case "Split":
		if j.Invert {
			return nil, false, fmt.Errorf("pre_tokenizer Split with invert is not supported")
		}
		m, err := newMatcher(j.Pattern)
		if err != nil {
			return nil, false, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		b, err := parseBehavior(j.Behavior)
		if err != nil {
			return nil, false, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		return []preTokenizeStep{splitStep{matcher: m, behavior: b}}, false, nil
	case "ByteLevel":
		if j.AddPrefixSpace != nil && *j.AddPrefixSpace {
			steps = append(steps, prefixSpaceStep{})
		}
		if j.UseRegex == nil || *j.UseRegex {
			p := gpt2Pattern
			m, err := newMatcher(patternJSON{Regex: &p})
			if err != nil {
				return nil, false, err
			}
			steps = append(steps, splitStep{matcher: m, behavior: isolated})
		}
		return steps, true, nil
	case "Metaspace":
		s, err := newMetaspaceStep(j)
		if err != nil {
			return nil, false, err
		}
		return []preTokenizeStep{s}, false, nil
	case "Digits":
		return []preTokenizeStep{digitsStep{individual: j.IndividualDigits}}, false, nil
	}
	return nil, false, fmt.Errorf("pre_tokenizer %q is not supported", j.Type)
}

// splitBehavior says what a Split does with the text a pattern matches.
type splitBehavior int

const (
	isolated splitBehavior = iota
	removed
	mergedWithPrevious
	mergedWithNext
)

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Isolated", "":
		return isolated, nil
	case "Removed":
		return removed, nil
	case "MergedWithPrevious":
		return mergedWithPrevious, nil
	case "MergedWithNext":
		return mergedWithNext, nil
	}
	return 0, fmt.Errorf("split behavior %q is not supported", s)
}

type splitStep struct {
	matcher  matcher
	behavior splitBehavior
}

func (s splitStep) apply(in, out []piece) []piece {
	for _, p := range in {
		out = splitPiece(p, s.matcher, s.behavior, out)
	}
	return out
}

// splitPiece cuts p at the matches of m as behavior says.
func splitPiece(p piece, m matcher, behavior splitBehavior, out []piece) []piece {
	text := p.text
	prev := 0   // end of the last emitted piece
	carry := -1 // MergedWithNext: start of a match waiting for the text after it
	emit := func(start, end int) {
		if end > start {
			out = append(out, piece{text: text[start:end], atStart: p.atStart && start == 0})
		}
	}
	m.each(text, func(start, end int) {
		switch behavior {
		case isolated:
			emit(prev, start)
			emit(start, end)
		case removed:
			emit(prev, start)
		case mergedWithPrevious:
			emit(prev, end)
		case mergedWithNext:
			if carry >= 0 {
				emit(carry, start)
			} else {
				emit(prev, start)
			}
			carry = start
		}
		prev = end
	})
	if carry >= 0 {
		emit(carry, len(text))
	} else {
		emit(prev, len(text))
	}
	return out
}

// prefixSpaceStep is ByteLevel's add_prefix_space.
type prefixSpaceStep struct{}

func (prefixSpaceStep) apply(in, out []piece) []piece {
	for _, p := range in {
		if !strings.HasPrefix(p.text, " ") {
			p.text = " " + p.text
		}
		out = append(out, p)
	}
	return out
}

// metaspaceStep is the sentencepiece-style pre-tokenizer: spaces become the
// replacement character (▁), which is prepended as the scheme says and
// starts a new piece when split is set.
type metaspaceStep struct {
	replacement string
	prepend     string // "always", "first" or "never"
	split       bool
}

func newMetaspaceStep(j preTokenizerJSON) (metaspaceStep, error) {
	s := metaspaceStep{replacement: j.Replacement, prepend: j.PrependScheme, split: j.Split == nil || *j.Split}
	if utf8.RuneCountInString(s.replacement) != 1 {
		return s, fmt.Errorf("pre_tokenizer Metaspace: replacement %q is not one character", s.replacement)
	}
	if s.prepend == "" {
		s.prepend = "always"
		if j.AddPrefixSpace != nil && !*j.AddPrefixSpace {
			s.prepend = "never"
		}
	}
	switch s.prepend {
	case "always", "first", "never":
	default:
		return s, fmt.Errorf("pre_tokenizer Metaspace: prepend_scheme %q is not supported", s.prepend)
	}
	return s, nil
}

func (s metaspaceStep) apply(in, out []piece) []piece {
	for _, p := range in {
		text := strings.ReplaceAll(p.text, " ", s.replacement)
		if (s.prepend == "always" || (s.prepend == "first" && p.atStart)) && !strings.HasPrefix(text, s.replacement) {
			text = s.replacement + text
		}
		q := piece{text: text, atStart: p.atStart}
		if !s.split {
			out = append(out, q)
			continue
		}
		out = splitPiece(q, literalMatcher(s.replacement), mergedWithNext, out)
	}
	return out
}

// digitsStep isolates numbers: each digit, or each run of digits.
type digitsStep struct{ individual bool }

func (s digitsStep) apply(in, out []piece) []piece {
	for _, p := range in {
		out = splitPiece(p, funcMatcher(func(text string, yield func(int, int)) {
			for i := 0; i < len(text); {
				r, n := utf8.DecodeRuneInString(text[i:])
				if !unicode.IsNumber(r) {
					i += n
					continue
				}
				j := i + n
				for !s.individual && j < len(text) {
					r, n := utf8.DecodeRuneInString(text[j:])
					if !unicode.IsNumber(r) {
						break
					}
					j += n
				}
				yield(i, j)
				i = j
			}
		}), isolated, out)
	}
	return out
}
