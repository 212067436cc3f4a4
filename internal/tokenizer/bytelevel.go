package tokenizer

import "strings"

// Byte-level BPE vocabularies (GPT-2 and its descendants: Llama 3, Qwen)
// spell every byte as one printable character: bytes that are printable in
// Latin-1 stand for themselves, the other 68 are given the code points from
// U+0100 upwards in byte order. Loading maps vocabulary entries back to raw
// bytes once, so encoding and decoding work on bytes directly.
var byteLevelRuneToByte = func() map[rune]byte {
	m := make(map[rune]byte, 256)
	next := rune(256)
	for b := range 256 {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			m[rune(b)] = byte(b)
		} else {
			m[next] = byte(b)
			next++
		}
	}
	return m
}()

// byteLevelDecodeString maps a string of byte-alphabet characters to the
// bytes they stand for; ok is false if a character is outside the alphabet.
func byteLevelDecodeString(s string) (string, bool) {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		c, ok := byteLevelRuneToByte[r]
		if !ok {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}
