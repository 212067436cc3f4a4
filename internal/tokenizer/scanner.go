package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The Split patterns of the common byte-level tokenizers, as they appear in
// tokenizer.json. splitScanner matches them by hand, several times faster
// than the regex engine; a test checks it against regexp2 on the same
// inputs.
const (
	// cl100k, Llama 3: numbers split in groups of up to three digits.
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2, Qwen2.5, Qwen3: single digits.
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

func knownScanner(pattern string) matcher {
	switch pattern {
	case llama3Pattern:
		return splitScanner{maxDigits: 3}
	case qwen2Pattern:
		return splitScanner{maxDigits: 1}
	case gpt2Pattern:
		return splitScanner{gpt2: true}
	}
	return nil
}

// splitScanner matches the Llama 3 / Qwen2 pattern family or, with gpt2
// set, GPT-2's. Every position of the text starts a match (the last
// alternatives take any run of whitespace or symbols), so matches tile the
// text.
type splitScanner struct {
	gpt2      bool
	maxDigits int // 0: any number of digits
}

type charClass uint8

const (
	classOther charClass = iota
	classLetter
	classNumber
	classSpace // \s other than \r and \n
	classNewline
)

var asciiClass = func() (t [utf8.RuneSelf]charClass) {
	for c := range utf8.RuneSelf {
		switch {
		case c == '\r' || c == '\n':
			t[c] = classNewline
		case c == ' ' || (c >= '\t' && c <= '\f'):
			t[c] = classSpace
		case (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
			t[c] = classLetter
		case c >= '0' && c <= '9':
			t[c] = classNumber
		}
	}
	return t
}()

// charAt decodes the character at i with its class; invalid UTF-8 is one
// byte of class other (the regex engine sees U+FFFD, a symbol).
func charAt(text string, i int) (rune, int, charClass) {
	c := text[i]
	if c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, n := utf8.DecodeRuneInString(text[i:])
	switch {
	case unicode.IsLetter(r):
		return r, n, classLetter
	case unicode.IsNumber(r):
		return r, n, classNumber
	case unicode.IsSpace(r):
		return r, n, classSpace
	}
	return r, n, classOther
}

func (s splitScanner) each(text string, yield func(int, int)) {
	for i := 0; i < len(text); {
		n := s.matchAt(text, i)
		if n <= 0 { // cannot happen: every position matches
			_, n, _ = charAt(text, i)
		}
		yield(i, i+n)
		i += n
	}
}

// run returns the end of the run of characters from i whose class is in
// the set, stopping after max characters when max > 0.
func run(text string, i int, max int, in func(charClass) bool) int {
	for k := 0; i < len(text) && (max <= 0 || k < max); k++ {
		_, n, c := charAt(text, i)
		if !in(c) {
			break
		}
		i += n
	}
	return i
}

func isLetter(c charClass) bool  { return c == classLetter }
func isNumber(c charClass) bool  { return c == classNumber }
func isOther(c charClass) bool   { return c == classOther }
func isSpace(c charClass) bool   { return c == classSpace || c == classNewline }
func isNewline(c charClass) bool { return c == classNewline }

// contraction returns the length of an English contraction suffix ('s, 't,
// 're, 've, 'm, 'll, 'd) at the start of text, or 0. foldCase also takes
// ASCII upper case, as the case-insensitive group does in regexp2.
func contraction(text string, foldCase bool) int {
	if len(text) < 2 || text[0] != '\'' {
		return 0
	}
	lower := func(c byte) byte {
		if foldCase && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch c := lower(text[1]); c {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if len(text) < 3 {
			return 0
		}
		if c2 := lower(text[2]); (c == 'r' || c == 'v') && c2 == 'e' || c == 'l' && c2 == 'l' {
			return 3
		}
	}
	return 0
}

func (s splitScanner) matchAt(text string, i int) int {
	if n := contraction(text[i:], !s.gpt2); n > 0 {
		return n
	}
	r0, w0, c0 := charAt(text, i)
	var c1 charClass = 255 // none
	if i+w0 < len(text) {
		_, _, c1 = charAt(text, i+w0)
	}
	if s.gpt2 {
		// ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
		start := i
		if r0 == ' ' && (c1 == classLetter || c1 == classNumber || c1 == classOther) {
			i += w0
			c0 = c1
		}
		switch c0 {
		case classLetter:
			return run(text, i, 0, isLetter) - start
		case classNumber:
			return run(text, i, 0, isNumber) - start
		case classOther:
			return run(text, i, 0, isOther) - start
		}
		return s.whitespace(text, start)
	}
	// `[^\r\n\p{L}\p{N}]?\p{L}+`
	if c0 == classLetter {
		return run(text, i+w0, 0, isLetter) - i
	}
	if (c0 == classOther || c0 == classSpace) && c1 == classLetter {
		return run(text, i+w0, 0, isLetter) - i
	}
	// `\p{N}{1,3}` or `\p{N}`
	if c0 == classNumber {
		return run(text, i, s.maxDigits, isNumber) - i
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if c0 == classOther || (r0 == ' ' && c1 == classOther) {
		j := i
		if c0 != classOther {
			j += w0
		}
		j = run(text, j, 0, isOther)
		return run(text, j, 0, isNewline) - i
	}
	// `\s*[\r\n]+`: the whitespace run up to its last line break.
	end, lastBreak, lastStart := i, -1, i
	for end < len(text) {
		_, n, c := charAt(text, end)
		if !isSpace(c) {
			break
		}
		if c == classNewline {
			lastBreak = end + n
		}
		lastStart = end
		end += n
	}
	if lastBreak >= 0 {
		return lastBreak - i
	}
	return spaceRun(i, end, lastStart, len(text))
}

// whitespace is `\s+(?!\S)|\s+` at i.
func (s splitScanner) whitespace(text string, i int) int {
	end, lastStart := i, i
	for end < len(text) {
		_, n, c := charAt(text, end)
		if !isSpace(c) {
			break
		}
		lastStart = end
		end += n
	}
	if end == i { // not whitespace either: one character
		_, n, _ := charAt(text, i)
		return n
	}
	return spaceRun(i, end, lastStart, len(text))
}

// spaceRun is `\s+(?!\S)|\s+` for the whitespace run [i, end) whose last
// character starts at lastStart: all of it at the end of the text, else all
// but its last character (which then leads the next word), or the single
// character.
func spaceRun(i, end, lastStart, textLen int) int {
	if end == textLen || lastStart == i {
		return end - i
	}
	return lastStart - i
}
