package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/stretchr/testify/require"
)

// matches lists a matcher's matches.
func matches(m matcher, text string) [][2]int {
	var out [][2]int
	m.each(text, func(s, e int) { out = append(out, [2]int{s, e}) })
	return out
}

func regexFor(t testing.TB, pattern string) matcher {
	re, err := regexp2.Compile(pattern, regexp2.None)
	require.NoError(t, err)
	return regexMatcher{re}
}

// scannerInputs are the golden cases' texts and random strings drawn from
// characters of every class the patterns tell apart.
func scannerInputs(t testing.TB) []string {
	var cases []goldenCase
	require.NoError(t, json.Unmarshal(mustReadTB(t, "testdata/cases.json"), &cases))
	var inputs []string
	for _, c := range cases {
		switch {
		case c.Text != nil:
			inputs = append(inputs, *c.Text)
		case c.Messages != nil:
			for _, m := range c.Messages {
				inputs = append(inputs, m.Content)
			}
		}
	}
	alphabet := []string{"a", "Z", "é", "東", "ſ", "'", "'s", "'S", "'ll", "'Re", "'x", "1", "٣", "½", "Ⅻ", " ", "  ", "\t", "\n", "\r\n",
		"\u00a0", "\u3000", "\u2028", "\u0085", "!", "(", "🚀", "\u200b", "-", "_", "\xff", "\xe6\x97"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(12) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		inputs = append(inputs, b.String())
	}
	return inputs
}

func mustReadTB(t testing.TB, path string) []byte {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestScannerMatchesRegex(t *testing.T) {
	inputs := scannerInputs(t)
	for _, pattern := range []string{llama3Pattern, qwen2Pattern, gpt2Pattern} {
		s := knownScanner(pattern)
		require.NotNil(t, s)
		re := regexFor(t, pattern)
		for _, in := range inputs {
			require.Equal(t, matches(re, in), matches(s, in), "pattern %.30q on %q", pattern, in)
		}
	}
}

func FuzzScannerMatchesRegex(f *testing.F) {
	for _, s := range []string{"Hello, world!", "it's 12345 \n\n  x", " 'LL  \t\r\n东京", "\xff'ſ"} {
		f.Add(s)
	}
	scanners := map[string]matcher{}
	regexes := map[string]matcher{}
	for _, p := range []string{llama3Pattern, qwen2Pattern, gpt2Pattern} {
		scanners[p], regexes[p] = knownScanner(p), regexFor(f, p)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for p, s := range scanners {
			if got, want := matches(s, in), matches(regexes[p], in); !equalMatches(got, want) {
				t.Fatalf("pattern %.30q on %q: scanner %v, regex %v", p, in, got, want)
			}
		}
	})
}

func equalMatches(a, b [][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
