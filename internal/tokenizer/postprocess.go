package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds the special tokens a model expects around a single
// sequence (BOS and the like) when an engine encodes with special tokens.
type postProcessor func(ids []int) []int

type postProcessorJSON struct {
	Type       string            `json:"type"`
	Processors []json.RawMessage `json:"processors"`
	Single     []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	Cls []json.RawMessage `json:"cls"` // [token, id]
	Sep []json.RawMessage `json:"sep"`
}

func newPostProcessor(raw json.RawMessage) (postProcessor, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var j postProcessorJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("post_processor: %w", err)
	}
	switch j.Type {
	case "ByteLevel":
		return nil, nil // only adjusts offsets
	case "TemplateProcessing":
		return templateProcessing(j)
	case "RobertaProcessing", "BertProcessing":
		cls, err := pairID(j.Cls)
		if err != nil {
			return nil, fmt.Errorf("post_processor %s cls: %w", j.Type, err)
		}
		sep, err := pairID(j.Sep)
		if err != nil {
			return nil, fmt.Errorf("post_processor %s sep: %w", j.Type, err)
		}
		return func(ids []int) []int {
			out := make([]int, 0, len(ids)+2)
			return append(append(append(out, cls), ids...), sep)
		}, nil
	case "Sequence":
		var steps []postProcessor
		for _, r := range j.Processors {
			p, err := newPostProcessor(r)
			if err != nil {
				return nil, err
			}
			if p != nil {
				steps = append(steps, p)
			}
		}
		return func(ids []int) []int {
			for _, p := range steps {
				ids = p(ids)
			}
			return ids
		}, nil
	}
	return nil, fmt.Errorf("post_processor %q is not supported", j.Type)
}

// templateProcessing lays out the single-sequence template: special tokens
// by their IDs, the sequence ("A") where it stands.
func templateProcessing(j postProcessorJSON) (postProcessor, error) {
	var before, after []int
	seen := false
	for _, item := range j.Single {
		switch {
		case item.Sequence != nil:
			if seen || item.Sequence.ID != "A" {
				return nil, fmt.Errorf("post_processor TemplateProcessing: single sequence %q is not supported", item.Sequence.ID)
			}
			seen = true
		case item.SpecialToken != nil:
			st, ok := j.SpecialTokens[item.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("post_processor TemplateProcessing: special token %q is not defined", item.SpecialToken.ID)
			}
			if seen {
				after = append(after, st.IDs...)
			} else {
				before = append(before, st.IDs...)
			}
		default:
			return nil, fmt.Errorf("post_processor TemplateProcessing: unknown template item")
		}
	}
	if !seen {
		return nil, fmt.Errorf("post_processor TemplateProcessing: the single template has no sequence")
	}
	return func(ids []int) []int {
		out := make([]int, 0, len(before)+len(ids)+len(after))
		return append(append(append(out, before...), ids...), after...)
	}, nil
}

// pairID reads the ID of a [token, id] pair.
func pairID(raw []json.RawMessage) (int, error) {
	if len(raw) != 2 {
		return 0, fmt.Errorf("want [token, id]")
	}
	var id int
	if err := json.Unmarshal(raw[1], &id); err != nil {
		return 0, err
	}
	return id, nil
}
