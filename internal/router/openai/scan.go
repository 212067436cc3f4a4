package openai

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner validates and skips JSON (RFC 8259 grammar; strings are not
// checked for UTF-8) without recursion and without allocating for nesting
// up to 64 levels.
type scanner struct {
	b []byte
	i int
	// trusted skips strings without validating them, for bodies Parse
	// has already validated.
	trusted bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// atEnd skips trailing whitespace and reports whether nothing follows.
func (s *scanner) atEnd() bool {
	s.ws()
	return s.i == len(s.b)
}

// colon skips whitespace, a ':' and whitespace.
func (s *scanner) colon() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return false
	}
	s.i++
	s.ws()
	return true
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasCtl reports whether b holds a control byte (below 0x20), which a
// JSON string must escape. Words are tested without branching: x-0x20
// borrows into a byte's high bit only where a byte below 0x20 is (the
// lowest such byte is exact, and none is flagged when there is none).
func hasCtl(b []byte) bool {
	var acc uint64
	for len(b) >= 32 {
		w0 := binary.LittleEndian.Uint64(b)
		w1 := binary.LittleEndian.Uint64(b[8:])
		w2 := binary.LittleEndian.Uint64(b[16:])
		w3 := binary.LittleEndian.Uint64(b[24:])
		acc |= (w0-ones*0x20)&^w0 | (w1-ones*0x20)&^w1 | (w2-ones*0x20)&^w2 | (w3-ones*0x20)&^w3
		b = b[32:]
	}
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		acc |= (w - ones*0x20) &^ w
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return acc&highs != 0
}

// str skips the string whose opening quote is at s.i and reports whether it
// holds escapes. The closing quote and the backslashes are found with
// bytes.IndexByte (vectorised), the control bytes between them with
// hasCtl: about three times faster on long prompts than testing the three
// kinds of special bytes word by word.
func (s *scanner) str() (esc, ok bool) {
	if s.trusted {
		return s.skipStr()
	}
	b := s.b
	i := s.i + 1
	q := -1 // the first quote at or after i, once searched for
	for {
		if q < i {
			j := bytes.IndexByte(b[i:], '"')
			if j < 0 {
				return esc, false
			}
			q = i + j
		}
		// Plain bytes up to the first backslash or the quote.
		end := q
		if k := bytes.IndexByte(b[i:q], '\\'); k >= 0 {
			end = i + k
		}
		if hasCtl(b[i:end]) {
			return esc, false
		}
		if end == q {
			s.i = q + 1
			return esc, true
		}
		// An escape at end < q, so b[end+1] exists; only \" moves past q.
		esc = true
		i = end
		switch b[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(b) || !hex4(b[i+2:i+6]) {
				return esc, false
			}
			i += 6
		default:
			return esc, false
		}
	}
}

// skipStr skips a string of a body that has been validated: its end is
// the first quote not escaped by an odd run of backslashes.
func (s *scanner) skipStr() (esc, ok bool) {
	b := s.b
	start := s.i + 1
	i := start
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return false, false
		}
		q := i + j
		k := q
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			s.i = q + 1
			return bytes.IndexByte(b[start:q], '\\') >= 0, true
		}
		i = q + 1
	}
}

func hex4(h []byte) bool {
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() bool {
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// value skips the value at s.i (after optional whitespace), checking it.
func (s *scanner) value() bool {
	var stackBuf [64]byte
	stack := stackBuf[:0] // closing bytes of the open containers
	for {
		// A value is expected.
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch c := s.b[s.i]; c {
		case '{', '[':
			s.i++
			s.ws()
			closer := byte('}')
			if c == '[' {
				closer = ']'
			}
			if s.i < len(s.b) && s.b[s.i] == closer {
				s.i++
				break
			}
			stack = append(stack, closer)
			if c == '{' {
				if !s.key() {
					return false
				}
			}
			continue
		case '"':
			if _, ok := s.str(); !ok {
				return false
			}
		case 't':
			if !s.literal("true") {
				return false
			}
		case 'f':
			if !s.literal("false") {
				return false
			}
		case 'n':
			if !s.literal("null") {
				return false
			}
		default:
			if c != '-' && (c < '0' || c > '9') || !s.number() {
				return false
			}
		}
		// A value ended: close containers or move to the next element.
		for {
			if len(stack) == 0 {
				return true
			}
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			top := stack[len(stack)-1]
			if s.b[s.i] == top {
				s.i++
				stack = stack[:len(stack)-1]
				continue
			}
			if s.b[s.i] != ',' {
				return false
			}
			s.i++
			if top == '}' && !s.key() {
				return false
			}
			break
		}
	}
}

// key skips whitespace, a member name and its colon.
func (s *scanner) key() bool {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return false
	}
	if _, ok := s.str(); !ok {
		return false
	}
	return s.colon()
}

// members calls fn with each member name, the offset of its key's opening
// quote and the offset of its value, for
// the object at s.i, which must be valid. If fn returns true, the value is
// skipped and the walk goes on; if it returns false, the walk stops with s.i
// at the value.
func (s *scanner) members(fn func(key string, k, v int) bool) {
	s.i++ // '{'
	for {
		s.ws()
		if s.b[s.i] == '}' {
			s.i++
			return
		}
		if s.b[s.i] == ',' {
			s.i++
			s.ws()
		}
		ks := s.i
		esc, _ := s.str()
		ke := s.i
		s.colon()
		if !fn(keyName(s.b, ks, ke, esc), ks, s.i) {
			return
		}
		s.value()
	}
}

// elements calls fn with the offset of each element of the array at s.i,
// which must be valid, with s.i at the element. fn must leave s.i after the
// element, or return false to stop.
func (s *scanner) elements(fn func(v int) bool) {
	s.i++ // '['
	for {
		s.ws()
		switch s.b[s.i] {
		case ']':
			s.i++
			return
		case ',':
			s.i++
			s.ws()
		}
		if !fn(s.i) {
			return
		}
	}
}

// appendStr appends to dst at most room bytes of the unescaped content of
// the valid string whose opening quote is at b[p]. An invalid surrogate
// escape, or one followed by another \u escape that does not pair with it,
// becomes U+FFFD (the pair is consumed).
func appendStr(dst, b []byte, p, room int) []byte {
	i := p + 1
	q := -1 // the first quote at or after i, once searched for
	var tmp [utf8.UTFMax]byte
	for room > 0 {
		c := b[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			// A run of plain bytes up to the quote or a backslash, both
			// found with bytes.IndexByte; the quote is searched for again
			// only once passed (an escaped one).
			if q < i {
				q = len(b)
				if k := bytes.IndexByte(b[i:], '"'); k >= 0 {
					q = i + k
				}
			}
			j := min(q, i+room)
			if k := bytes.IndexByte(b[i:j], '\\'); k >= 0 {
				j = i + k
			}
			dst = append(dst, b[i:j]...)
			room -= j - i
			i = j
			continue
		}
		var out []byte
		out, i = unescapeAt(b, i, &tmp)
		if len(out) > room {
			out = out[:room]
		}
		dst = append(dst, out...)
		room -= len(out)
	}
	return dst
}

// unescapeAt decodes the escape at b[i] (a backslash) into tmp and returns
// its bytes and the index after it; a surrogate pair of \u escapes is one
// rune.
func unescapeAt(b []byte, i int, tmp *[utf8.UTFMax]byte) ([]byte, int) {
	switch e := b[i+1]; e {
	case 'u':
		r := hexRune(b[i+2 : i+6])
		i += 6
		if utf16.IsSurrogate(r) && i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
			r = utf16.DecodeRune(r, hexRune(b[i+2:i+6]))
			i += 6
		}
		return utf8.AppendRune(tmp[:0], r), i
	default:
		tmp[0] = unescapeByte(e)
		return tmp[:1], i + 2
	}
}

func unescapeByte(e byte) byte {
	switch e {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return e // '"', '\\', '/'
}

func hexRune(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
