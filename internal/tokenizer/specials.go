package tokenizer

import "strings"

// specialTokens are the chat-template markers with their own IDs. The IDs
// are Llama 3's (128000 and up), which sit above every cl100k_base rank.
type specialTokens struct {
	byMarker map[string]int
	byID     map[int]string
	firstID  int
	lastID   int
}

// Llama 3 chat markers and their IDs (from the public Llama 3 tokenizer
// configuration).
const (
	BeginOfText = "<|begin_of_text|>"
	EndOfText   = "<|end_of_text|>"
	StartHeader = "<|start_header_id|>"
	EndHeader   = "<|end_header_id|>"
	EndOfTurn   = "<|eot_id|>"
)

func llama3Specials() specialTokens {
	s := specialTokens{
		byMarker: map[string]int{
			BeginOfText: 128000,
			EndOfText:   128001,
			StartHeader: 128006,
			EndHeader:   128007,
			EndOfTurn:   128009,
		},
		byID:    map[int]string{},
		firstID: 100256,
		lastID:  128255,
	}
	for m, id := range s.byMarker {
		s.byID[id] = m
	}
	return s
}

// next finds the earliest marker in text and returns its offset, the marker
// and its ID, or -1 when text holds none. Every marker starts with "<|", so
// one scan for that pair finds it (a scan per marker was quadratic in the
// number of markers of a long chat prompt).
func (s specialTokens) next(text string) (int, string, int) {
	for off := 0; ; {
		at := strings.Index(text[off:], "<|")
		if at < 0 {
			return -1, "", 0
		}
		at += off
		if end := strings.Index(text[at+2:], "|>"); end >= 0 {
			m := text[at : at+2+end+2]
			if id, ok := s.byMarker[m]; ok {
				return at, m, id
			}
		}
		off = at + 2
	}
}
