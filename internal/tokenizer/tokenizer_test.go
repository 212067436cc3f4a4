package tokenizer

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodeIsRealBPE(t *testing.T) {
	tok, err := New("")
	require.NoError(t, err)
	// "hello world" is two cl100k_base tokens; a whitespace splitter would
	// also say two, so check a word that BPE splits and one it merges.
	assert.Equal(t, []int{15339, 1917}, tok.Encode("hello world"))
	assert.Greater(t, tok.Count("antidisestablishmentarianism"), 1)
	assert.Equal(t, 1, tok.Count(" the"))
}

func TestDecodeRoundTrip(t *testing.T) {
	tok, err := New("")
	require.NoError(t, err)
	for _, s := range []string{"", "Kubernetes-native LLM serving.", "naïve café ☕ 東京", "a\n\nb\tc"} {
		assert.Equal(t, s, tok.Decode(tok.Encode(s)), "round trip of %q", s)
	}
}

func TestDecodeSkipsUnknownIDs(t *testing.T) {
	tok, err := New("")
	require.NoError(t, err)
	assert.Equal(t, "hello", tok.Decode([]int{-5, 15339, 120000, 999999999}))
}

func TestChatTemplateUsesSpecialIDs(t *testing.T) {
	tok, err := New("")
	require.NoError(t, err)
	ids, err := tok.EncodeChat([]Message{{Role: "user", Content: "hi"}}, true)
	require.NoError(t, err)
	require.NotEmpty(t, ids)
	assert.Equal(t, 128000, ids[0], "begins with <|begin_of_text|>")
	assert.Contains(t, ids, 128009, "turn ends with <|eot_id|>")
	assert.Equal(t, 2, countOf(ids, 128006), "two headers: user and assistant")
	text := ApplyChatTemplate([]Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}, false)
	assert.Equal(t, text, tok.Decode(tok.Encode(text)))
}

func countOf(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestSegmentCacheIsExactAndBounded(t *testing.T) {
	tok, err := New("")
	require.NoError(t, err)
	long := strings.Repeat("Shared system prompt about routing and caching. ", 40)
	msgs := []Message{{Role: "system", Content: long}, {Role: "user", Content: "first"}}
	first, err := tok.EncodeChat(msgs, true)
	require.NoError(t, err)
	msgs[1].Content = "second"
	second, err := tok.EncodeChat(msgs, true)
	require.NoError(t, err)
	// The cached system segment gives the same tokens as a fresh encode.
	fresh, err := New("")
	require.NoError(t, err)
	want, err := fresh.EncodeChat(msgs, true)
	require.NoError(t, err)
	assert.Equal(t, want, second)
	assert.Equal(t, first[:len(first)-8], second[:len(first)-8], "shared prefix")
	// Callers may modify what Encode returns without corrupting the cache.
	a := tok.Encode(long)
	a[0] = -1
	assert.NotEqual(t, -1, tok.Encode(long)[0])

	c := newSegmentCache(4, 64)
	calls := 0
	enc := func(s string) []int { calls++; return []int{len(s)} }
	c.encode("abcdefgh", enc)
	c.encode("abcdefgh", enc)
	assert.Equal(t, 1, calls, "second lookup hits")
	for i := range 10 {
		c.encode(strings.Repeat("x", 10+i), enc)
	}
	assert.LessOrEqual(t, c.bytes, 64, "byte budget holds")
	c.encode("abcdefgh", enc)
	assert.Equal(t, 12, calls, "the oldest entry was evicted")
}
