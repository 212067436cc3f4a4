package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// writeMetaspace writes a sentencepiece-style BPE: characters rather than
// bytes (printable ASCII and ▁ for the space), byte fallback to <0xXX>
// tokens for everything else, the Metaspace pre-tokenizer with the "first"
// prepend scheme, an NFKC normalizer and a BOS post-processor. Its merges
// are those of the cl100k_base ranks below n made of printable ASCII with
// at most a leading space.
func writeMetaspace(ranks map[string]int, n int, out string) {
	var words []string
	for tok, r := range ranks {
		if r < n && len(tok) > 1 && sentencepieceLike(tok) {
			words = append(words, tok)
		}
	}
	sort.Slice(words, func(i, j int) bool { return ranks[words[i]] < ranks[words[j]] })
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2}
	for b := range 256 {
		vocab[fmt.Sprintf("<0x%02X>", b)] = len(vocab)
	}
	vocab["▁"] = len(vocab)
	for c := byte('!'); c <= '~'; c++ {
		vocab[string(c)] = len(vocab)
	}
	var merges [][2]string
	for _, w := range words {
		chars := strings.Split(strings.ReplaceAll(w, " ", "▁"), "")
		a, b, ok := splitChars(chars, ranks, vocab)
		if !ok {
			continue
		}
		vocab[a+b] = len(vocab)
		merges = append(merges, [2]string{a, b})
	}
	tj := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens": []added{
			{ID: 0, Content: "<unk>", Special: true}, {ID: 1, Content: "<s>", Special: true}, {ID: 2, Content: "</s>", Special: true},
		},
		"normalizer":    map[string]any{"type": "NFKC"},
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{1}, "tokens": []string{"<s>"}}},
		},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true},
		}},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges},
	}
	cfg := map[string]any{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "clean_up_tokenization_spaces": false,
		"tokenizer_class": "PreTrainedTokenizerFast",
		"chat_template": "{% for m in messages %}{{ bos_token if loop.first }}[{{ m.role | upper }}] {{ m.content }}{{ eos_token }}\n{% endfor %}" +
			"{% if add_generation_prompt %}[ASSISTANT]{% endif %}"}
	write(filepath.Join(out, "tokenizer.json"), tj)
	write(filepath.Join(out, "tokenizer_config.json"), cfg)
}

// sentencepieceLike: printable ASCII, with a space only at the start.
func sentencepieceLike(tok string) bool {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == ' ' && i == 0 {
			continue
		}
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

// splitChars is split over characters: the pair BPE joins last, using
// only merges already in the vocabulary, ordered by cl100k rank.
func splitChars(chars []string, ranks map[string]int, vocab map[string]int) (string, string, bool) {
	rankOf := func(s string) (int, bool) {
		if _, ok := vocab[s]; !ok {
			return 0, false
		}
		return ranks[strings.ReplaceAll(s, "▁", " ")], true
	}
	parts := append([]string(nil), chars...)
	for len(parts) > 2 {
		best, at := -1, -1
		for i := 0; i+1 < len(parts); i++ {
			if r, ok := rankOf(parts[i] + parts[i+1]); ok && (at < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			return "", "", false
		}
		parts = append(parts[:at], append([]string{parts[at] + parts[at+1]}, parts[at+2:]...)...)
	}
	_, okA := vocab[parts[0]]
	_, okB := vocab[parts[1]]
	return parts[0], parts[1], okA && okB
}
