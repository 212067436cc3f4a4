package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// bpeModel is a Hugging Face "BPE" model. Vocabulary entries and merges are
// resolved to IDs at load time so that encoding a word only looks up pairs
// of IDs. In byte-level mode every vocabulary entry is stored as the raw
// bytes it stands for, so words are encoded straight from the input's bytes
// without mapping them to the printable byte alphabet first.
type bpeModel struct {
	byteLevel    bool
	ignoreMerges bool
	byteFallback bool
	fuseUnknown  bool
	unknownID    int // -1 without an unknown token

	vocab   map[string]int // raw bytes (byte-level) or text -> ID
	byteIDs [256]int       // byte-level: the ID of each single byte; byte fallback: of <0xXX>
	merges  map[uint64]uint64
	tokens  []string // ID -> raw bytes (byte-level) or text, "" for gaps
}

type bpeJSON struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Dropout                 *float64        `json:"dropout"`
}

// pairKey packs two adjacent IDs into one map key.
func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// maxTokenID bounds the IDs a tokenizer file may use (the largest
// vocabularies have a few hundred thousand).
const maxTokenID = 1 << 24

// noMerge is the rank of a pair that has no merge.
const noMerge = int(^uint32(0))

func newBPEModel(raw json.RawMessage, byteLevel bool) (*bpeModel, error) {
	var kind struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &kind); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if kind.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", kind.Type)
	}
	var j bpeJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if j.ContinuingSubwordPrefix != nil && *j.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("BPE continuing_subword_prefix is not supported")
	}
	if j.EndOfWordSuffix != nil && *j.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("BPE end_of_word_suffix is not supported")
	}
	if j.Dropout != nil && *j.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout is not supported (it makes encoding random)")
	}
	if len(j.Vocab) == 0 {
		return nil, fmt.Errorf("BPE vocab is empty")
	}
	m := &bpeModel{byteLevel: byteLevel, ignoreMerges: j.IgnoreMerges, byteFallback: j.ByteFallback,
		fuseUnknown: j.FuseUnk, unknownID: -1, vocab: make(map[string]int, len(j.Vocab))}
	maxID := 0
	for tok, id := range j.Vocab {
		if id < 0 || id > maxTokenID {
			return nil, fmt.Errorf("BPE vocab: token %q has ID %d out of range", tok, id)
		}
		maxID = max(maxID, id)
	}
	m.tokens = make([]string, maxID+1)
	for tok, id := range j.Vocab {
		key := tok
		if byteLevel {
			b, ok := byteLevelDecodeString(tok)
			if !ok {
				// Not made of the byte alphabet: no input can produce it.
				m.tokens[id] = tok
				continue
			}
			key = b
		}
		m.vocab[key] = id
		m.tokens[id] = key
	}
	for i := range m.byteIDs {
		m.byteIDs[i] = -1
		key := string([]byte{byte(i)})
		if !byteLevel {
			key = fmt.Sprintf("<0x%02X>", i)
		}
		if id, ok := m.vocab[key]; ok {
			m.byteIDs[i] = id
		}
	}
	if byteLevel {
		for i, id := range m.byteIDs {
			if id < 0 {
				return nil, fmt.Errorf("byte-level BPE vocab has no token for byte 0x%02X", i)
			}
		}
	}
	if j.UnkToken != nil {
		id, ok := j.Vocab[*j.UnkToken]
		if !ok {
			return nil, fmt.Errorf("BPE unk_token %q is not in the vocab", *j.UnkToken)
		}
		m.unknownID = id
	}
	if err := m.loadMerges(j.Merges, j.Vocab); err != nil {
		return nil, err
	}
	return m, nil
}

// loadMerges reads merges written either as "a b" strings or as [a, b]
// pairs; a merge's rank is its position.
func (m *bpeModel) loadMerges(raw json.RawMessage, vocab map[string]int) error {
	var pairs [][2]string
	if len(raw) > 0 && string(raw) != "null" {
		var asStrings []string
		if err := json.Unmarshal(raw, &asStrings); err == nil {
			pairs = make([][2]string, len(asStrings))
			for i, s := range asStrings {
				a, b, ok := strings.Cut(s, " ")
				if !ok {
					return fmt.Errorf("BPE merge %d %q is not two tokens separated by a space", i, s)
				}
				pairs[i] = [2]string{a, b}
			}
		} else if err := json.Unmarshal(raw, &pairs); err != nil {
			return fmt.Errorf("BPE merges are neither strings nor pairs: %w", err)
		}
	}
	m.merges = make(map[uint64]uint64, len(pairs))
	for rank, p := range pairs {
		a, okA := vocab[p[0]]
		b, okB := vocab[p[1]]
		merged, okM := vocab[p[0]+p[1]]
		if !okA || !okB || !okM {
			return fmt.Errorf("BPE merge %d (%q %q) uses a token that is not in the vocab", rank, p[0], p[1])
		}
		k := pairKey(a, b)
		if _, dup := m.merges[k]; !dup {
			m.merges[k] = uint64(rank)<<32 | uint64(merged)
		}
	}
	return nil
}

// rank returns the merge rank of the pair and the ID it merges into.
func (m *bpeModel) rank(a, b int) (int, int) {
	v, ok := m.merges[pairKey(a, b)]
	if !ok {
		return noMerge, 0
	}
	return int(v >> 32), int(uint32(v))
}

// encodeWord appends the IDs of one pre-tokenized word.
func (m *bpeModel) encodeWord(word string, out []int) []int {
	if word == "" {
		return out
	}
	if m.byteLevel && len(word) == 1 {
		return append(out, m.byteIDs[word[0]])
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	var buf [64]int
	ids := m.initialSymbols(word, buf[:0])
	return append(out, m.merge(ids)...)
}

// initialSymbols splits a word into its starting symbols: bytes in
// byte-level mode, else characters (with byte fallback or the unknown token
// for characters the vocab lacks).
func (m *bpeModel) initialSymbols(word string, ids []int) []int {
	if m.byteLevel {
		for i := 0; i < len(word); i++ {
			ids = append(ids, m.byteIDs[word[i]])
		}
		return ids
	}
	lastUnknown := false
	for i, r := range word {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, size = utf8.DecodeRuneInString(word[i:])
		}
		if id, ok := m.vocab[word[i:i+size]]; ok {
			ids = append(ids, id)
			lastUnknown = false
			continue
		}
		if m.byteFallback {
			allBytes := true
			for k := i; k < i+size; k++ {
				allBytes = allBytes && m.byteIDs[word[k]] >= 0
			}
			if allBytes {
				for k := i; k < i+size; k++ {
					ids = append(ids, m.byteIDs[word[k]])
				}
				lastUnknown = false
				continue
			}
		}
		if m.unknownID < 0 {
			continue // no unknown token: the character is dropped
		}
		if !(m.fuseUnknown && lastUnknown) {
			ids = append(ids, m.unknownID)
		}
		lastUnknown = true
	}
	return ids
}

// merge applies merges lowest rank first until none applies. ranks[i] is
// the rank of the pair (ids[i], ids[i+1]); only the neighbours of a merge
// need a new look-up.
func (m *bpeModel) merge(ids []int) []int {
	if len(ids) < 2 {
		return ids
	}
	if len(ids) > longWord {
		return m.mergeLong(ids)
	}
	var rbuf [64]int
	var merged [64]int
	ranks := rbuf[:0]
	into := merged[:0]
	if len(ids) > len(rbuf) {
		ranks = make([]int, 0, len(ids))
		into = make([]int, 0, len(ids))
	}
	for i := 0; i+1 < len(ids); i++ {
		r, id := m.rank(ids[i], ids[i+1])
		ranks = append(ranks, r)
		into = append(into, id)
	}
	for len(ids) > 1 {
		best, at := noMerge, -1
		for i, r := range ranks {
			if r < best {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		ids[at] = into[at]
		ids = append(ids[:at+1], ids[at+2:]...)
		ranks = append(ranks[:at], ranks[at+1:]...)
		into = append(into[:at], into[at+1:]...)
		if at > 0 {
			ranks[at-1], into[at-1] = m.rank(ids[at-1], ids[at])
		}
		if at < len(ids)-1 {
			ranks[at], into[at] = m.rank(ids[at], ids[at+1])
		}
	}
	return ids
}

// longWord is the length from which merge's rescans (quadratic) give way to
// a heap: sentencepiece-style models without a pre-tokenizer hand whole
// paragraphs to the model as one word.
const longWord = 256

// mergeCandidate is a pair that may merge: its rank, the position of its
// left symbol, and both IDs (to tell whether a merge since invalidated it).
type mergeCandidate struct {
	rank, pos, left, right, into int
}

// mergeLong is merge in O(n log n): symbols form a linked list and
// candidate pairs wait in a min-heap ordered by rank, then position.
func (m *bpeModel) mergeLong(ids []int) []int {
	n := len(ids)
	next := make([]int, n)
	prev := make([]int, n)
	alive := make([]bool, n)
	for i := range ids {
		next[i], prev[i], alive[i] = i+1, i-1, true
	}
	next[n-1] = -1
	h := make(candidateHeap, 0, n)
	push := func(i int) {
		j := next[i]
		if i < 0 || j < 0 {
			return
		}
		if r, into := m.rank(ids[i], ids[j]); r != noMerge {
			h.push(mergeCandidate{rank: r, pos: i, left: ids[i], right: ids[j], into: into})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for len(h) > 0 {
		c := h.pop()
		j := next[c.pos]
		if !alive[c.pos] || j < 0 || ids[c.pos] != c.left || ids[j] != c.right {
			continue // stale: a neighbour merged first
		}
		ids[c.pos] = c.into
		alive[j] = false
		next[c.pos] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = c.pos
		}
		if prev[c.pos] >= 0 {
			push(prev[c.pos])
		}
		push(c.pos)
	}
	out := ids[:0]
	for i := 0; i >= 0 && i < n; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

type candidateHeap []mergeCandidate

func (h candidateHeap) less(a, b int) bool {
	return h[a].rank < h[b].rank || (h[a].rank == h[b].rank && h[a].pos < h[b].pos)
}

func (h *candidateHeap) push(c mergeCandidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candidateHeap) pop() mergeCandidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, small := 2*i+1, 2*i+2, i
		if l < len(s) && s.less(l, small) {
			small = l
		}
		if r < len(s) && s.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		s[i], s[small] = s[small], s[i]
		i = small
	}
	*h = s
	return top
}
