package tokenizer

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: text matched
// verbatim before pre-tokenization, special (chat markers, BOS/EOS) or not.
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// addedVocab finds added tokens in text. Candidates are indexed by their
// first byte and tried longest first, which gives the leftmost-longest match
// the Hugging Face implementation uses.
type addedVocab struct {
	tokens  []addedToken
	byFirst [256][]int // indexes into tokens
	// firstBytes are the distinct first bytes of the tokens, so that text
	// is skipped with a fast byte search up to the next candidate.
	firstBytes string
	byID       map[int]int
	byContent  map[string]int // content -> ID
}

func newAddedVocab(tokens []addedToken) (*addedVocab, error) {
	v := &addedVocab{byID: map[int]int{}, byContent: map[string]int{}}
	for _, t := range tokens {
		if t.ID < 0 || t.ID > maxTokenID {
			return nil, fmt.Errorf("added token %q has ID %d out of range", t.Content, t.ID)
		}
		if _, dup := v.byID[t.ID]; dup {
			continue
		}
		v.byID[t.ID] = len(v.tokens)
		v.tokens = append(v.tokens, t)
		if t.Content == "" {
			continue
		}
		v.byContent[t.Content] = t.ID
		v.byFirst[t.Content[0]] = append(v.byFirst[t.Content[0]], len(v.tokens)-1)
	}
	for b, list := range v.byFirst {
		if len(list) > 0 {
			v.firstBytes += string([]byte{byte(b)})
		}
		sort.SliceStable(list, func(a, b int) bool { return len(v.tokens[list[a]].Content) > len(v.tokens[list[b]].Content) })
	}
	return v, nil
}

// next finds the first added token in text. start and end include the
// whitespace the token's lstrip/rstrip flags absorb.
func (v *addedVocab) next(text string) (start, end, id int, found bool) {
	for i := 0; i < len(text); i++ {
		skip := v.skip(text[i:])
		if skip < 0 {
			break
		}
		i += skip
		cands := v.byFirst[text[i]]
		for _, k := range cands {
			t := &v.tokens[k]
			if len(text)-i < len(t.Content) || text[i:i+len(t.Content)] != t.Content {
				continue
			}
			e := i + len(t.Content)
			if t.SingleWord && (endsWithWordChar(text[:i]) || startsWithWordChar(text[e:])) {
				continue
			}
			s := i
			if t.LStrip {
				for s > 0 {
					r, n := utf8.DecodeLastRuneInString(text[:s])
					if !unicode.IsSpace(r) {
						break
					}
					s -= n
				}
			}
			if t.RStrip {
				for e < len(text) {
					r, n := utf8.DecodeRuneInString(text[e:])
					if !unicode.IsSpace(r) {
						break
					}
					e += n
				}
			}
			return s, e, t.ID, true
		}
	}
	return 0, 0, 0, false
}

// skip returns the offset of the first byte of text that can start an added
// token, or -1.
func (v *addedVocab) skip(text string) int {
	switch len(v.firstBytes) {
	case 0:
		return -1
	case 1:
		return strings.IndexByte(text, v.firstBytes[0])
	}
	for i := 0; i < len(text); i++ {
		if len(v.byFirst[text[i]]) > 0 {
			return i
		}
	}
	return -1
}

func isWordChar(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) }

func endsWithWordChar(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWordChar(r)
}

func startsWithWordChar(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWordChar(r)
}

// token returns the added token with the given ID.
func (v *addedVocab) token(id int) (*addedToken, bool) {
	k, ok := v.byID[id]
	if !ok {
		return nil, false
	}
	return &v.tokens[k], true
}
