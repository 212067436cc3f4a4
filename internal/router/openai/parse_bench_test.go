package openai

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParse parses 200 KiB chat bodies: one long system prompt of
// plain text, and one of 80-character lines (a \n escape each).
func BenchmarkParse(b *testing.B) {
	plain := strings.Repeat("lorem ipsum ", 200<<10/12)
	lines := strings.Repeat(strings.Repeat("x", 79)+"\n", 200<<10/80)
	for name, text := range map[string]string{"plain": plain, "lines": lines} {
		body := []byte(fmt.Sprintf(`{"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}],"model":"m","stream":true}`, text))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := Parse(body, 8192)
				if err != nil || r.Model != "m" || len(r.Prompt) != 8192 {
					b.Fatalf("%v %+v", err, r)
				}
			}
		})
	}
}
