package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// matcher finds the non-overlapping matches of a Split pattern, left to
// right, as byte offsets.
type matcher interface {
	each(text string, yield func(start, end int))
}

func newMatcher(p patternJSON) (matcher, error) {
	switch {
	case p.String != nil:
		if *p.String == "" {
			return nil, fmt.Errorf("empty pattern")
		}
		return literalMatcher(*p.String), nil
	case p.Regex != nil:
		if s := knownScanner(*p.Regex); s != nil {
			return s, nil
		}
		re, err := regexp2.Compile(*p.Regex, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", *p.Regex, err)
		}
		return regexMatcher{re}, nil
	}
	return nil, fmt.Errorf("the pattern is neither String nor Regex")
}

type literalMatcher string

func (l literalMatcher) each(text string, yield func(int, int)) {
	for off := 0; ; {
		at := strings.Index(text[off:], string(l))
		if at < 0 {
			return
		}
		yield(off+at, off+at+len(l))
		off += at + len(l)
	}
}

type funcMatcher func(string, func(int, int))

func (f funcMatcher) each(text string, yield func(int, int)) { f(text, yield) }

// regexMatcher runs a pattern the hand-written scanners do not cover.
// regexp2 supports the look-ahead that tokenizer patterns use; it reports
// offsets in runes, which are turned back into bytes here.
type regexMatcher struct{ re *regexp2.Regexp }

func (r regexMatcher) each(text string, yield func(int, int)) {
	runes := []rune(text)
	m, err := r.re.FindRunesMatch(runes)
	runePos, bytePos := 0, 0
	advance := func(to int) int {
		for ; runePos < to; runePos++ {
			bytePos += utf8RuneLenOrOne(runes[runePos], text[bytePos:])
		}
		return bytePos
	}
	for err == nil && m != nil {
		start := advance(m.Index)
		end := advance(m.Index + m.Length)
		if end > start {
			yield(start, end)
		}
		m, err = r.re.FindNextMatch(m)
	}
}

// utf8RuneLenOrOne is the byte length of r as it appears at the start of
// rest: invalid bytes became U+FFFD when the text was turned into runes.
func utf8RuneLenOrOne(r rune, rest string) int {
	if r == utf8.RuneError {
		_, n := utf8.DecodeRuneInString(rest)
		return n
	}
	return utf8.RuneLen(r)
}
