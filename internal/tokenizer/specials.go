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
// and its ID, or -1 when text holds none.
func (s specialTokens) next(text string) (int, string, int) {
	best, bestMarker, bestID := -1, "", 0
	for m, id := range s.byMarker {
		if at := strings.Index(text, m); at >= 0 && (best < 0 || at < best) {
			best, bestMarker, bestID = at, m, id
		}
	}
	return best, bestMarker, bestID
}
