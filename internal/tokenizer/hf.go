package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// hfTokenizer is the backend Load builds from a model's Hugging Face
// tokenizer files.
type hfTokenizer struct {
	added     *addedVocab
	normalize normalizer
	steps     []preTokenizeStep
	model     *bpeModel
	post      postProcessor
	decoder   []decodeStep
	hasDecode bool
	// cleanUpSpaces: tokenizer_config.json's clean_up_tokenization_spaces,
	// which removes the space decoding leaves before punctuation and
	// English contractions.
	cleanUpSpaces bool
	template      *chatTemplate
	vocabSize     int
	// positional: a segment's tokens depend on whether it starts the input
	// (Metaspace's "first" scheme), so such segments bypass the cache.
	positional bool

	scratch sync.Pool // *[2][]piece
}

type tokenizerJSON struct {
	AddedTokens   []addedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         json.RawMessage `json:"model"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
}

type tokenizerConfigJSON struct {
	ChatTemplate   json.RawMessage `json:"chat_template"`
	BOSToken       json.RawMessage `json:"bos_token"`
	EOSToken       json.RawMessage `json:"eos_token"`
	CleanUpSpaces  bool            `json:"clean_up_tokenization_spaces"`
	TokenizerClass string          `json:"tokenizer_class"`
	AddBOSToken    *bool           `json:"add_bos_token"`
	AddEOSToken    *bool           `json:"add_eos_token"`
}

// loaded memoizes Load by directory and file versions: tokenizers are large
// (a 150k vocabulary takes ~0.5 s and ~100 MB to load) and safe to share.
var loaded sync.Map // loadKey -> *loadResult

type loadKey struct {
	dir   string
	stamp string
}

type loadResult struct {
	once sync.Once
	tok  *Tokenizer
	err  error
}

// Load builds a Tokenizer from a Hugging Face tokenizer directory:
// tokenizer.json, and tokenizer_config.json, chat_template.jinja or
// chat_template.json for the chat template and BOS/EOS tokens. A component
// it does not implement is an error naming it, never an approximation.
// Loading the same unchanged directory again returns the same Tokenizer;
// Load is safe for concurrent use.
func Load(dir string) (*Tokenizer, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	stamp, err := filesStamp(abs)
	if err != nil {
		return nil, err
	}
	v, _ := loaded.LoadOrStore(loadKey{abs, stamp}, &loadResult{})
	r := v.(*loadResult)
	r.once.Do(func() { r.tok, r.err = load(abs) })
	return r.tok, r.err
}

// tokenizerFiles are the files Load reads, in the order of precedence of the
// chat template sources.
var tokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "chat_template.json"}

// filesStamp identifies the versions of the directory's tokenizer files.
func filesStamp(dir string) (string, error) {
	var b strings.Builder
	for i, name := range tokenizerFiles {
		st, err := os.Stat(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) && i > 0 {
			b.WriteString("-;")
			continue
		}
		if err != nil {
			return "", fmt.Errorf("load tokenizer: %w", err)
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

func load(dir string) (*Tokenizer, error) {
	h, err := loadHF(dir)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer from %s: %w", dir, err)
	}
	return &Tokenizer{hf: h, cache: newSegmentCache(cacheMinBytes, cacheMaxBytes)}, nil
}

func loadHF(dir string) (*hfTokenizer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, err
	}
	h, err := parseTokenizerJSON(raw)
	if err != nil {
		return nil, err
	}
	cfg, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	h.cleanUpSpaces = cfg.CleanUpSpaces
	if err := h.applyBOSFlags(cfg); err != nil {
		return nil, err
	}
	if h.template, err = loadChatTemplate(dir, cfg); err != nil {
		return nil, err
	}
	return h, nil
}

// bosFlagClasses are the tokenizer classes whose Hugging Face implementation
// rebuilds the post-processor from add_bos_token and add_eos_token, so
// these flags, not tokenizer.json, decide the special tokens of a prompt.
var bosFlagClasses = map[string]bool{
	"LlamaTokenizer": true, "LlamaTokenizerFast": true, "CodeLlamaTokenizer": true, "CodeLlamaTokenizerFast": true,
	"GemmaTokenizer": true, "GemmaTokenizerFast": true,
}

func (h *hfTokenizer) applyBOSFlags(cfg tokenizerConfigJSON) error {
	if !bosFlagClasses[cfg.TokenizerClass] || (cfg.AddBOSToken == nil && cfg.AddEOSToken == nil) {
		return nil
	}
	addBOS := cfg.AddBOSToken == nil || *cfg.AddBOSToken
	addEOS := cfg.AddEOSToken != nil && *cfg.AddEOSToken
	var before, after []int
	for _, t := range []struct {
		add  bool
		raw  json.RawMessage
		name string
		into *[]int
	}{{addBOS, cfg.BOSToken, "bos_token", &before}, {addEOS, cfg.EOSToken, "eos_token", &after}} {
		if !t.add {
			continue
		}
		text, err := tokenText(t.raw)
		if err != nil {
			return fmt.Errorf("tokenizer_config.json %s: %w", t.name, err)
		}
		id, ok := h.tokenID(text)
		if text == "" || !ok {
			return fmt.Errorf("tokenizer_config.json asks to add %s %q, which is not in the vocabulary", t.name, text)
		}
		*t.into = append(*t.into, id)
	}
	h.post = func(ids []int) []int {
		out := make([]int, 0, len(before)+len(ids)+len(after))
		return append(append(append(out, before...), ids...), after...)
	}
	return nil
}

// tokenID returns the ID of a token given by its text: an added token or a
// vocabulary entry.
func (h *hfTokenizer) tokenID(text string) (int, bool) {
	if id, ok := h.added.byContent[text]; ok {
		return id, true
	}
	key := text
	if h.model.byteLevel {
		var ok bool
		if key, ok = byteLevelDecodeString(text); !ok {
			return 0, false
		}
	}
	id, ok := h.model.vocab[key]
	return id, ok
}

// readTokenizerConfig reads tokenizer_config.json; a directory without one
// has the zero config.
func readTokenizerConfig(dir string) (tokenizerConfigJSON, error) {
	var cfg tokenizerConfigJSON
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("tokenizer_config.json: %w", err)
	}
	return cfg, nil
}

// parseTokenizerJSON builds the backend from tokenizer.json's content.
func parseTokenizerJSON(raw []byte) (*hfTokenizer, error) {
	var j tokenizerJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	h := &hfTokenizer{}
	var err error
	if h.added, err = newAddedVocab(j.AddedTokens); err != nil {
		return nil, err
	}
	if h.normalize, err = newNormalizer(j.Normalizer); err != nil {
		return nil, err
	}
	var byteLevel bool
	if h.steps, byteLevel, err = newPreTokenizer(j.PreTokenizer); err != nil {
		return nil, err
	}
	for _, s := range h.steps {
		if m, ok := s.(metaspaceStep); ok && m.prepend == "first" {
			h.positional = true
		}
	}
	if h.model, err = newBPEModel(j.Model, byteLevel); err != nil {
		return nil, err
	}
	if h.post, err = newPostProcessor(j.PostProcessor); err != nil {
		return nil, err
	}
	if h.decoder, h.hasDecode, err = newDecoder(j.Decoder); err != nil {
		return nil, err
	}
	h.vocabSize = len(h.model.tokens)
	for _, t := range h.added.tokens {
		h.vocabSize = max(h.vocabSize, t.ID+1)
	}
	return h, nil
}

// loadChatTemplate reads the chat template (chat_template.jinja, then
// chat_template.json, then tokenizer_config.json's chat_template) and the
// BOS/EOS tokens. A model without one has no template (nil).
func loadChatTemplate(dir string, cfg tokenizerConfigJSON) (*chatTemplate, error) {
	bos, err := tokenText(cfg.BOSToken)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json bos_token: %w", err)
	}
	eos, err := tokenText(cfg.EOSToken)
	if err != nil {
		return nil, fmt.Errorf("tokenizer_config.json eos_token: %w", err)
	}
	source, err := templateSource(dir, cfg.ChatTemplate)
	if err != nil || source == "" {
		return nil, err
	}
	return newChatTemplate(source, bos, eos)
}

func templateSource(dir string, fromConfig json.RawMessage) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		return string(b), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.json")); err == nil {
		var j struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return "", fmt.Errorf("chat_template.json: %w", err)
		}
		return pickTemplate(j.ChatTemplate)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return pickTemplate(fromConfig)
}

// pickTemplate reads a chat_template value: one template, or a list of
// named ones of which the "default" one renders chats.
func pickTemplate(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("chat_template is neither a string nor a list of named templates")
	}
	for _, t := range named {
		if t.Name == "default" {
			return t.Template, nil
		}
	}
	return "", fmt.Errorf("chat_template lists no template named \"default\"")
}

// tokenText reads a bos_token/eos_token value: a string, an object with
// "content", or null.
func tokenText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("neither a string nor a token object")
	}
	return obj.Content, nil
}

// encode returns the IDs of text without the post-processor's special
// tokens: added tokens are matched first, the text between them goes through
// normalizer, pre-tokenizer and BPE (through the segment cache).
func (h *hfTokenizer) encode(text string, cache *segmentCache) []int {
	ids := make([]int, 0, len(text)/4+8) // ~4 bytes per token in English
	atStart := true
	for text != "" {
		start, end, id, found := h.added.next(text)
		if !found {
			return h.appendSegment(ids, text, atStart, cache)
		}
		if start > 0 {
			ids = h.appendSegment(ids, text[:start], atStart, cache)
		}
		ids = append(ids, id)
		text = text[end:]
		atStart = false
	}
	return ids
}

func (h *hfTokenizer) appendSegment(ids []int, segment string, atStart bool, cache *segmentCache) []int {
	if atStart && h.positional {
		return h.encodeSegment(ids, segment, true)
	}
	return append(ids, cache.encode(segment, func(s string) []int { return h.encodeSegment(nil, s, false) })...)
}

// encodeSegment appends the IDs of text that holds no added token.
func (h *hfTokenizer) encodeSegment(ids []int, text string, atStart bool) []int {
	if h.normalize != nil {
		text = h.normalize(text)
	}
	if text == "" {
		return ids
	}
	bufs, _ := h.scratch.Get().(*[2][]piece)
	if bufs == nil {
		bufs = new([2][]piece)
	}
	cur := append(bufs[0][:0], piece{text: text, atStart: atStart})
	next := bufs[1][:0]
	for _, s := range h.steps {
		next = s.apply(cur, next[:0])
		cur, next = next, cur
	}
	for _, p := range cur {
		ids = h.model.encodeWord(p.text, ids)
	}
	clear(cur) // drop references to the text
	clear(next)
	bufs[0], bufs[1] = cur[:0], next[:0]
	h.scratch.Put(bufs)
	return ids
}

// decode turns IDs back into text; added tokens (special ones too) are
// written as their text, unknown IDs skipped.
func (h *hfTokenizer) decode(ids []int) string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if t, ok := h.added.token(id); ok {
			tokens = append(tokens, t.Content)
			continue
		}
		if id >= 0 && id < len(h.model.tokens) && h.model.tokens[id] != "" {
			tokens = append(tokens, h.model.tokens[id])
		}
	}
	var text string
	if h.hasDecode {
		for _, d := range h.decoder {
			tokens = d(tokens)
		}
		text = strings.Join(tokens, "")
	} else {
		text = strings.Join(tokens, " ")
	}
	if h.cleanUpSpaces {
		text = cleanUpSpaces.Replace(text)
	}
	return text
}

// cleanUpSpaces is the clean-up Hugging Face applies to decoded text when
// clean_up_tokenization_spaces is set.
var cleanUpSpaces = strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'",
	" n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re")
