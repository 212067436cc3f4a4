package openai

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// refStr is the string grammar of RFC 8259 byte by byte: the end of the
// string whose opening quote is b[0], whether it holds escapes, and
// whether it is valid. The scanner's word and vector steps must agree
// with it.
func refStr(b []byte) (end int, esc, ok bool) {
	for i := 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc, true
		case c < 0x20:
			return 0, esc, false
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hex4(b[i+2:i+6]) {
					return 0, esc, false
				}
				i += 6
			default:
				return 0, esc, false
			}
		default:
			i++
		}
	}
	return 0, esc, false
}

// appendStrRef is appendStr as it was, byte by byte: the reference of
// the faster one.
func appendStrRef(dst, b []byte, p, room int) []byte {
	i := p + 1
	var tmp [utf8.UTFMax]byte
	for room > 0 {
		c := b[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			j := i + 1
			for j < len(b) && j-i < room && b[j] != '"' && b[j] != '\\' {
				j++
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

// checkStr fails when the scanner and refStr disagree on b.
func checkStr(t *testing.T, b []byte) {
	t.Helper()
	s := scanner{b: b}
	esc, ok := s.str()
	end, resc, rok := refStr(b)
	if ok != rok || ok && (s.i != end || esc != resc) {
		t.Fatalf("str(%q) = end %d, esc %v, ok %v; want end %d, esc %v, ok %v", b, s.i, esc, ok, end, resc, rok)
	}
	if !ok {
		return
	}
	for _, room := range []int{1, 3, 8, 33, len(b)} {
		if got, want := appendStr(nil, b, 0, room), appendStrRef(nil, b, 0, room); string(got) != string(want) {
			t.Fatalf("appendStr(%q, room %d) = %q, want %q", b, room, got, want)
		}
	}
}

// TestStrAgainstReference puts each kind of special byte at every offset
// of strings long enough to cross the scanner's 8- and 32-byte steps.
func TestStrAgainstReference(t *testing.T) {
	specials := []string{"\x00", "\x1f", "\n", "\x7f", "\x80", "\xa0", "\xff", " ", `\"`, `\\`, `\n`, `\u00e9`, `\u00g9`, `\x`, `\`, `"`, `\\"`}
	for n := 0; n <= 80; n++ {
		for p := 0; p <= n; p++ {
			for _, sp := range specials {
				body := `"` + strings.Repeat("a", p) + sp + strings.Repeat("b", n-p)
				checkStr(t, []byte(body+`"`))
				checkStr(t, []byte(body+`","x"`)) // a later quote
				checkStr(t, []byte(body))         // unterminated
			}
		}
	}
}
