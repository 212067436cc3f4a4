// Command mktiny writes a small byte-level BPE tokenizer in Hugging Face's
// format for internal/tokenizer's parity tests: the first ranks of
// cl100k_base (all 256 bytes and the most frequent merges), Llama-3-style
// chat markers and a few non-special added tokens with strip flags, the
// Llama-3 pre-tokenizer pattern, a BOS post-processor and a chat template.
//
//	go run ./hack/tokenizer-golden/mktiny -n 4000 -out internal/tokenizer/testdata/tiny
//	go run ./hack/tokenizer-golden/mktiny -metaspace -n 4000 -out internal/tokenizer/testdata/metaspace
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"sort"

	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"
)

const cl100kURL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

// llama3Pattern is the Split pattern of Llama 3's tokenizer.json.
const llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// chatTemplate is written for these tests in the Llama 3 layout: a BOS,
// header markers around each role, an end-of-turn marker after each
// message, and the assistant header as the generation prompt.
const chatTemplate = `{{- bos_token }}
{%- for message in messages %}
    {%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}
        {{- raise_exception('unknown role ' + message['role']) }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`

type added struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

func main() {
	n := flag.Int("n", 4000, "how many cl100k_base ranks to keep")
	out := flag.String("out", "internal/tokenizer/testdata/tiny", "output directory")
	metaspace := flag.Bool("metaspace", false, "write the sentencepiece-style tokenizer instead")
	flag.Parse()
	ranks, err := tiktokenloader.NewOfflineLoader().LoadTiktokenBpe(cl100kURL)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	if *metaspace {
		writeMetaspace(ranks, *n, *out)
		return
	}
	byRank := make([]string, 0, *n)
	for tok, r := range ranks {
		if r < *n {
			byRank = append(byRank, tok)
		}
	}
	sort.Slice(byRank, func(i, j int) bool { return ranks[byRank[i]] < ranks[byRank[j]] })
	// In rank order, so that a token no merge sequence reaches (tiktoken
	// has a few) is left out before later tokens could use it.
	kept := map[string]int{}
	vocab := map[string]int{}
	var pairs [][2]string
	for _, tok := range byRank {
		r := ranks[tok]
		if len(tok) > 1 {
			a, b, ok := split(tok, r, kept)
			if !ok {
				continue
			}
			pairs = append(pairs, [2]string{byteLevel(a), byteLevel(b)})
		}
		kept[tok] = r
		vocab[byteLevel(tok)] = r
	}
	next := *n
	var tokens []added
	for _, s := range []string{"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} {
		tokens = append(tokens, added{ID: next, Content: s, Special: true})
		next++
	}
	tokens = append(tokens,
		added{ID: next, Content: "<tool>", LStrip: true},
		added{ID: next + 1, Content: "</tool>", RStrip: true},
		added{ID: next + 2, Content: "[[ref]]", LStrip: true, RStrip: true, Normalized: true},
	)
	tj := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": tokens,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair":           []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{"<|begin_of_text|>": map[string]any{"id": "<|begin_of_text|>", "ids": []int{*n}, "tokens": []string{"<|begin_of_text|>"}}},
		},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true, "vocab": vocab, "merges": pairs},
	}
	cfg := map[string]any{
		"bos_token":                    "<|begin_of_text|>",
		"eos_token":                    "<|eot_id|>",
		"chat_template":                chatTemplate,
		"model_max_length":             8192,
		"clean_up_tokenization_spaces": false,
		"tokenizer_class":              "PreTrainedTokenizerFast",
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	write(filepath.Join(*out, "tokenizer.json"), tj)
	write(filepath.Join(*out, "tokenizer_config.json"), cfg)
}

// split finds the two tokens that BPE, using only ranks below r, joins into
// tok last: that pair is tok's merge.
func split(tok string, r int, ranks map[string]int) (string, string, bool) {
	parts := make([]string, len(tok))
	for i := 0; i < len(tok); i++ { // bytes, not runes
		parts[i] = tok[i : i+1]
	}
	for len(parts) > 2 {
		best, at := r, -1
		for i := 0; i+1 < len(parts); i++ {
			if pr, ok := ranks[parts[i]+parts[i+1]]; ok && pr < best {
				best, at = pr, i
			}
		}
		if at < 0 {
			return "", "", false
		}
		parts = append(parts[:at], append([]string{parts[at] + parts[at+1]}, parts[at+2:]...)...)
	}
	_, ok0 := ranks[parts[0]]
	_, ok1 := ranks[parts[1]]
	return parts[0], parts[1], ok0 && ok1
}

// byteLevel spells raw bytes in the printable byte alphabet of byte-level
// BPE vocabularies.
func byteLevel(s string) string {
	var out []rune
	for _, c := range []byte(s) {
		out = append(out, byteRune[c])
	}
	return string(out)
}

var byteRune = func() [256]rune {
	var t [256]rune
	next := rune(256)
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			t[b] = rune(b)
		} else {
			t[b] = next
			next++
		}
	}
	return t
}()

func write(path string, v any) {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
