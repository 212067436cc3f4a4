// Package tokenizer is a real byte-pair-encoding tokenizer for token counts,
// prefix-cache block hashes and simulated outputs.
//
// It wraps the cl100k_base BPE ranks, embedded in the binary so that no
// network is needed. Llama 3's 128k vocabulary is tiktoken's 100k tokens plus
// 28k more, so counts for Llama-3-family prompts come close; for other
// families (Qwen, Mistral) they approximate, which is what token budgets,
// block hashing and routing estimates need.
//
// Load reads a model's own Hugging Face tokenizer files instead
// (tokenizer.json, and the chat template with its BOS/EOS tokens from
// chat_template.jinja, chat_template.json or tokenizer_config.json) and gives
// a Tokenizer with the same methods that encodes exactly as the engine
// serving that model does, which KV-cache-aware routing needs to match the
// block hashes engines report: BPE (byte-level, or sentencepiece-style with
// byte fallback), added tokens matched before pre-tokenization, the
// post-processor's special tokens (EncodePrompt) and the model's Jinja chat
// template (EncodeChat). A component it does not implement is a load error,
// never an approximation. Parity is tested against Hugging Face's JavaScript
// implementation (hack/tokenizer-golden).
package tokenizer

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

// DefaultEncoding is the BPE used when none is named.
const DefaultEncoding = "cl100k_base"

// Tokenizer encodes text into token IDs and back. It is safe for concurrent
// use; build one per process and share it (loading the ranks takes ~100 ms).
type Tokenizer struct {
	// The built-in encodings (New).
	bpe      *tiktoken.Tiktoken
	specials specialTokens
	// A model's own tokenizer (Load); nil for the built-in encodings.
	hf    *hfTokenizer
	cache *segmentCache
}

// Segments of at least 256 bytes are cached, up to 32 MiB in total.
const (
	cacheMinBytes = 256
	cacheMaxBytes = 32 << 20
)

// loaderOnce guards the library's process-wide BPE loader hook: it must point
// at the embedded files before any encoding is loaded, and setting it again
// would race with concurrent loads.
var loaderOnce sync.Once

// New loads the named encoding ("cl100k_base" or "o200k_base") from the
// embedded rank files.
func New(encoding string) (*Tokenizer, error) {
	if encoding == "" {
		encoding = DefaultEncoding
	}
	loaderOnce.Do(func() { tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader()) })
	bpe, err := tiktoken.GetEncoding(encoding)
	if err != nil {
		return nil, fmt.Errorf("load BPE encoding %q: %w", encoding, err)
	}
	return &Tokenizer{bpe: bpe, specials: llama3Specials(), cache: newSegmentCache(cacheMinBytes, cacheMaxBytes)}, nil
}

// Encode returns the token IDs of text. Chat-template markers produced by
// ApplyChatTemplate (such as "<|eot_id|>") map to their single special IDs;
// everything else is ordinary BPE.
//
// For a loaded tokenizer Encode is the engine's encoding without special
// tokens (add_special_tokens=False, as vLLM encodes a rendered chat): added
// tokens in the text map to their IDs, no BOS is added.
func (t *Tokenizer) Encode(text string) []int {
	if t.hf != nil {
		return t.hf.encode(text, t.cache)
	}
	if !strings.Contains(text, "<|") {
		return append([]int(nil), t.ordinary(text)...)
	}
	ids := make([]int, 0, len(text)/3+16) // ~4 bytes per token in English
	for text != "" {
		at, marker, id := t.specials.next(text)
		if at < 0 {
			ids = append(ids, t.ordinary(text)...)
			break
		}
		if at > 0 {
			ids = append(ids, t.ordinary(text[:at])...)
		}
		ids = append(ids, id)
		text = text[at+len(marker):]
	}
	return ids
}

// ordinary encodes text without special tokens, through the segment cache.
func (t *Tokenizer) ordinary(text string) []int {
	return t.cache.encode(text, t.bpe.EncodeOrdinary)
}

// EncodePrompt returns the token IDs of a completion prompt as the engine
// encodes it (add_special_tokens=True): a loaded tokenizer's post-processor
// adds its special tokens (BOS for Llama-family models). The built-in
// encodings add none, so EncodePrompt equals Encode for them.
func (t *Tokenizer) EncodePrompt(text string) []int {
	ids := t.Encode(text)
	if t.hf != nil && t.hf.post != nil {
		return t.hf.post(ids)
	}
	return ids
}

// Count returns the number of tokens of text.
func (t *Tokenizer) Count(text string) int { return len(t.Encode(text)) }

// Decode turns token IDs back into text. Unknown IDs are skipped, so Decode
// never fails on client-provided input.
func (t *Tokenizer) Decode(ids []int) string {
	if t.hf != nil {
		return t.hf.decode(ids)
	}
	var b strings.Builder
	start := 0
	flush := func(end int) {
		if end > start {
			b.WriteString(t.bpe.Decode(ids[start:end]))
		}
	}
	for i, id := range ids {
		if marker, ok := t.specials.byID[id]; ok {
			flush(i)
			b.WriteString(marker)
			start = i + 1
			continue
		}
		if id < 0 || id >= t.specials.firstID {
			flush(i)
			start = i + 1
		}
	}
	flush(len(ids))
	return b.String()
}

// VocabSize is the size of the ID space Encode can return.
func (t *Tokenizer) VocabSize() int {
	if t.hf != nil {
		return t.hf.vocabSize
	}
	return t.specials.lastID + 1
}
