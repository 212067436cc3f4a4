package sim

import (
	"math/rand/v2"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/kthena/kthena/internal/tokenizer"
)

// corpus is the text random mode draws from (written for this simulator).
const corpus = "The scheduler admits requests while the batch has room and the cache has blocks. " +
	"Each step runs one forward pass over every running sequence. " +
	"Prompts that share a prefix reuse the blocks computed for the first of them. " +
	"When memory runs out the newest sequence is preempted and recomputed later. " +
	"Decoding reads every weight once per step, so larger batches cost little more. " +
	"Prefill is bound by arithmetic, decode by memory bandwidth. " +
	"A router that keeps related prompts together saves both time and memory. "

// outputPlanner chooses the tokens an engine will emit.
type outputPlanner struct {
	mode   Mode
	tok    *tokenizer.Tokenizer
	corpus []int

	mu  sync.Mutex
	rng *rand.Rand
}

func newOutputPlanner(mode Mode, tok *tokenizer.Tokenizer, seed int64) *outputPlanner {
	return &outputPlanner{mode: mode, tok: tok, corpus: tok.Encode(corpus),
		rng: rand.New(rand.NewPCG(uint64(seed), 0x6b7468656e61))}
}

// plan is what a request will produce.
type plan struct {
	tokens []int
	pieces []string // text of each token, UTF-8 safe when concatenated in order
	finish engine.FinishReason
}

// plan picks the output. maxTokens bounds it; with ignoreEOS the output is
// exactly maxTokens long. echoText is what echo mode repeats.
func (o *outputPlanner) plan(echoText string, maxTokens int, explicitMax, ignoreEOS bool, stops []string) plan {
	var src []int
	n := maxTokens
	o.mu.Lock()
	switch {
	case o.mode == ModeEcho:
		src = o.tok.Encode(echoText)
		if len(src) == 0 {
			src = o.corpus
		}
		if !ignoreEOS {
			n = min(n, len(src))
		}
	default:
		src = o.corpus
		if !ignoreEOS {
			if explicitMax {
				// A real model usually stops before the cap.
				n = max(1, maxTokens/2+o.rng.IntN(maxTokens/2+1))
			} else {
				n = min(maxTokens, 32+o.rng.IntN(480))
			}
		}
	}
	offset := 0
	if o.mode == ModeRandom {
		offset = o.rng.IntN(len(src))
	}
	o.mu.Unlock()

	tokens := make([]int, n)
	for i := range tokens {
		tokens[i] = src[(offset+i)%len(src)]
	}
	finish := engine.FinishStop
	if n == maxTokens {
		finish = engine.FinishLength
	}
	p := plan{tokens: tokens, pieces: o.pieces(tokens), finish: finish}
	if len(stops) > 0 {
		p = applyStops(p, stops)
	}
	return p
}

// pieces decodes tokens one by one, carrying incomplete UTF-8 sequences to
// the next piece so no streamed chunk splits a character.
func (o *outputPlanner) pieces(tokens []int) []string {
	out := make([]string, len(tokens))
	var carry []byte
	for i, t := range tokens {
		b := append(carry, o.tok.Decode([]int{t})...)
		cut := len(b)
		for cut > 0 && !utf8.Valid(b[:cut]) {
			cut--
		}
		out[i] = string(b[:cut])
		carry = append([]byte(nil), b[cut:]...)
	}
	if len(carry) > 0 && len(out) > 0 {
		out[len(out)-1] += string(carry)
	}
	return out
}

// applyStops truncates the output before the first stop string.
func applyStops(p plan, stops []string) plan {
	var b strings.Builder
	for i, piece := range p.pieces {
		start := b.Len()
		b.WriteString(piece)
		text := b.String()
		for _, s := range stops {
			if s == "" {
				continue
			}
			if at := strings.Index(text, s); at >= 0 {
				keep := i
				if at > start {
					// keep the partial piece before the stop string
					p.pieces[i] = text[start:at]
					keep = i + 1
				}
				if keep == 0 {
					keep = 1
					p.pieces[0] = ""
				}
				return plan{tokens: p.tokens[:keep], pieces: p.pieces[:keep], finish: engine.FinishStop}
			}
		}
	}
	return p
}
