package kvcacheaware

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/tokenizer"
)

// TokenizerSource says how the requests of some models are tokenised.
// Exactly one of Path, Encoding and Engine is set.
type TokenizerSource struct {
	// Models are globs (path.Match) over the model name sent to the engine;
	// empty matches every model.
	Models []string `json:"models,omitempty"`
	// Path is a directory holding the model's Hugging Face tokenizer files
	// (tokenizer.json, and the chat template in tokenizer_config.json,
	// chat_template.jinja or chat_template.json), such as the model's own
	// directory or a mounted ConfigMap; tokenised in process.
	Path string `json:"path,omitempty"`
	// Encoding is a built-in BPE (cl100k_base or o200k_base) with Llama 3's
	// chat markers: the tokenizer of kthena-sim engines.
	Encoding string `json:"encoding,omitempty"`
	// Engine asks the engine's POST /tokenize (vLLM, kthena-sim).
	Engine bool `json:"engine,omitempty"`
}

// requestTokenizer tokenises a request the way the engines of its model do.
type requestTokenizer interface {
	Tokens(ctx context.Context, req *framework.Request, eps []*framework.Endpoint) ([]int, error)
}

// localTokenizer tokenises in process.
type localTokenizer struct{ tok *tokenizer.Tokenizer }

func (l localTokenizer) Tokens(_ context.Context, req *framework.Request, _ []*framework.Endpoint) ([]int, error) {
	return Tokens(l.tok, req.Path, req.WholePrompt())
}

// tokenizers resolves a model's tokenizer: the first source whose globs
// match, else the fallback. Resolutions are remembered per model.
type tokenizers struct {
	sources  []TokenizerSource
	local    map[string]localTokenizer // by encoding
	engine   *engineTokenizer
	fallback requestTokenizer

	byModel sync.Map // model -> requestTokenizer
}

// newTokenizers builds every source up front, so a bad encoding fails the
// configuration rather than a request. fallbackEncoding "" makes the
// engine's /tokenize the fallback.
func newTokenizers(sources []TokenizerSource, fallbackEncoding string, engine *engineTokenizer) (*tokenizers, error) {
	t := &tokenizers{sources: sources, local: map[string]localTokenizer{}, engine: engine}
	// local holds built-in encodings by name and loaded files by "path:"
	// and directory.
	loadLocal := func(enc string) (localTokenizer, error) {
		if l, ok := t.local[enc]; ok {
			return l, nil
		}
		var tok *tokenizer.Tokenizer
		var err error
		if dir, ok := strings.CutPrefix(enc, "path:"); ok {
			tok, err = tokenizer.Load(dir)
		} else {
			tok, err = tokenizer.New(enc)
		}
		if err != nil {
			return localTokenizer{}, err
		}
		t.local[enc] = localTokenizer{tok}
		return t.local[enc], nil
	}
	for i, s := range sources {
		set := 0
		for _, on := range []bool{s.Path != "", s.Encoding != "", s.Engine} {
			if on {
				set++
			}
		}
		if set != 1 {
			return nil, fmt.Errorf("tokenizers[%d]: set exactly one of path, encoding and engine", i)
		}
		for _, g := range s.Models {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("tokenizers[%d].models: %q: %w", i, g, err)
			}
		}
		if s.Encoding != "" {
			if _, err := loadLocal(s.Encoding); err != nil {
				return nil, fmt.Errorf("tokenizers[%d].encoding: %w", i, err)
			}
		}
		if s.Path != "" {
			if _, err := loadLocal("path:" + s.Path); err != nil {
				return nil, fmt.Errorf("tokenizers[%d].path: %w", i, err)
			}
		}
	}
	if fallbackEncoding == "" {
		t.fallback = engine
		return t, nil
	}
	l, err := loadLocal(fallbackEncoding)
	if err != nil {
		return nil, fmt.Errorf("tokenizerEncoding: %w", err)
	}
	t.fallback = l
	return t, nil
}

// For is the tokenizer of model.
func (t *tokenizers) For(model string) requestTokenizer {
	if v, ok := t.byModel.Load(model); ok {
		return v.(requestTokenizer)
	}
	rt := t.resolve(model)
	t.byModel.Store(model, rt)
	return rt
}

func (t *tokenizers) resolve(model string) requestTokenizer {
	for _, s := range t.sources {
		if !matchesAny(s.Models, model) {
			continue
		}
		switch {
		case s.Engine:
			return t.engine
		case s.Path != "":
			return t.local["path:"+s.Path]
		}
		return t.local[s.Encoding]
	}
	return t.fallback
}

// Local is the in-process tokenizer used for model, or nil when its
// requests are tokenised by the engine.
func (t *tokenizers) Local(model string) *tokenizer.Tokenizer {
	if l, ok := t.For(model).(localTokenizer); ok {
		return l.tok
	}
	return nil
}

func matchesAny(globs []string, model string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, model); ok {
			return true
		}
	}
	return false
}

// defaultEngineTokenizeTimeout bounds a /tokenize call: past it the request
// is routed without the index (a miss everywhere) rather than held.
const defaultEngineTokenizeTimeout = 100 * time.Millisecond

var errNoPrompt = errors.New("request has no prompt")
