package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kthena/kthena/internal/tokenizer"
)

// Workload kinds.
const (
	// KindShared (the zero value) is open loop: Groups × PerGroup requests,
	// each group sharing a system prompt of SystemTokens.
	KindShared = ""
	// KindMultiTurn is closed loop per user: Groups users, PerGroup rounds
	// each. Every user shares one system prompt; the first message carries
	// HistoryTokens of the user's own history; each next round sends the
	// whole conversation so far (with the answers the engine returned) plus
	// a new question, ThinkTime (mean, exponential) after the previous
	// answer finished. Users start as a Poisson process at Rate per second.
	KindMultiTurn = "multi-turn"
	// KindShareGPT is open loop without sharing: Groups requests whose
	// input and output lengths follow ShareGPT's (see shareGPTLengths).
	KindShareGPT = "sharegpt"
	// KindClosed is closed loop at fixed concurrency: the Groups × PerGroup
	// requests of a shared workload (in random order) are dealt to Clients
	// clients, which all start at once and each send their next request as
	// soon as the previous one finished. Rate is unused.
	KindClosed = "closed"
)

// Targets a workload's results are checked against (QualityMarkdown).
const (
	// TargetLong: Kthena's default beats upstream's default in throughput
	// and TTFT p90 and reaches 90 % of the oracle's prefix hit rate.
	TargetLong = "long"
	// TargetShort: Kthena's default is no worse than least-request.
	TargetShort = "short"
)

// Workload is a request stream in simulated time.
type Workload struct {
	Name string
	Kind string
	// Groups share a system prompt of SystemTokens; each group sends
	// PerGroup requests with its own question. Multi-turn: users × rounds.
	Groups, PerGroup int
	SystemTokens     int
	HistoryTokens    int // multi-turn: the user's own history in the first message
	QuestionTokens   int // mean; ±30 % uniform
	OutputTokens     int // mean; ±30 % uniform
	// Rate is the Poisson arrival rate in requests (multi-turn: users) per
	// simulated second.
	Rate      float64
	ThinkTime float64 // multi-turn: mean simulated seconds between rounds
	// Clients is the concurrency of a closed-loop workload.
	Clients int
	// TimeScale multiplies the run's time scale for this workload (0 = 1):
	// a workload whose token rate would starve the bench process of CPU at
	// time scale 1 runs slower on the wall clock, the same in simulated time.
	TimeScale float64
	Seed      uint64
	// Target names the acceptance check for this workload ("" = none).
	Target string
	// Saturated marks the workload on which throughput separates the
	// policies (kvcache-aware's throughput targets).
	Saturated bool
	// Restarts are engines restarted during the run.
	Restarts []Restart
	// MaxModelLen overrides the engines' context length (0: the
	// profile's, 32,768 for Llama 3.1 8B as usually deployed).
	MaxModelLen int
	// About describes the workload for the report.
	About string
}

// Workloads are the quality bench's defaults, the field's shapes
// (docs/bench/quality.md explains each and what was shortened).
func Workloads() []Workload {
	long := Workload{Name: "long shared prompts (150×5, sys 6000, q 1200, out 200, 12 req/s)", Groups: 150, PerGroup: 5,
		SystemTokens: 6000, QuestionTokens: 1200, OutputTokens: 200, Rate: 12, Seed: 1, Target: TargetLong,
		About: "The field's shared-prefix shape C / \"B2B SaaS\" (llm-d, GIE: 150 groups × 5, 6,000-token system prompts, 1,200-token questions, ~900k cacheable tokens against ~1.7M tokens of KV cache in the fleet) with outputs cut from 1,000 to 200 tokens; open-loop Poisson at 12 req/s, below saturation for the prefix-aware policies."}
	sat := long
	sat.Name = "long shared prompts, saturated (150×5, sys 6000, q 1200, out 200, 30 req/s)"
	sat.Rate = 30
	sat.About = "The same requests at 30 req/s: above what four engines serve without queueing when they recompute the system prompts (about 16 req/s), so throughput separates the policies."
	sat.Saturated = true
	restarts := long
	restarts.Name = "long shared prompts, engines restarting (150×5, sys 6000, q 1200, out 200, 12 req/s, 4 restarts)"
	restarts.Restarts = []Restart{{At: 12, Engine: 0, Down: 3}, {At: 24, Engine: 1, Down: 3}, {At: 36, Engine: 2, Down: 3}, {At: 48, Engine: 3, Down: 3}}
	restarts.About = "The long shared prompts at 12 req/s with each engine restarted once, at 12, 24, 36 and 48 s: it stops accepting connections, finishes its requests, stays down 3 s, then serves again on the same address and KV-event port with an empty cache and its event sequence back at 0 (`sim.Fleet.Restart`). The router's index must drop what the old engine held (the subscription's connection is lost, then the sequence restarts) and learn the new engine's blocks; prefix-cache keeps believing what it sent before the restart."
	return []Workload{
		long,
		sat,
		restarts,
		{Name: "short shared prompts (64×12, sys 1000, q 128, out 128, 40 req/s)", Groups: 64, PerGroup: 12,
			SystemTokens: 1000, QuestionTokens: 128, OutputTokens: 128, Rate: 40, Seed: 3, Target: TargetShort,
			About: "SGLang's generated-shared-prefix shape (64 groups, 128-token questions) with 12 instead of 16 prompts per group, 1,000- instead of 2,048-token system prompts (the field's 'shared-prefix A/B' size) and 128 instead of 256 output tokens. All system prompts fit in every engine's cache, so load balance matters more than affinity."},
		{Name: "short shared prompts, closed loop (32×192, sys 1000, q 64, out 64, 256 clients)", Kind: KindClosed, Groups: 32, PerGroup: 192,
			SystemTokens: 1000, QuestionTokens: 64, OutputTokens: 64, Clients: 256, Seed: 6, TimeScale: 3, Target: TargetShort,
			About: "The published shared-prefix closed-loop router benchmark's shape (hundreds of clients each sending its next request as soon as the previous one finished; 300 clients, 8,192 requests, 4,096-token system prompts on three engines) with short prompts: 256 clients, 6,144 requests, 32 system prompts of 1,000 tokens, 64-token questions and answers. Every engine can cache every system prompt, and the fleet answers hundreds of requests per scrape interval, so a scorer that repeats the last scrape's verdict sends all of them to one engine (herding). Run at 3 wall seconds per simulated second so that the token rate does not starve the bench process."},
		{Name: "short prompts (no sharing, in 400, out 200, 30 req/s)", Groups: 600, PerGroup: 1,
			QuestionTokens: 400, OutputTokens: 200, Rate: 30, Seed: 2, Target: TargetShort,
			About: "Short unshared chat prompts: only load balancing matters."},
		{Name: "multi-turn chat (80 users × 5 rounds, sys 1000, history 2000, q 100, answer 100)", Kind: KindMultiTurn,
			Groups: 80, PerGroup: 5, SystemTokens: 1000, HistoryTokens: 2000, QuestionTokens: 100, OutputTokens: 100,
			Rate: 4, ThinkTime: 2, Seed: 4,
			About: "production-stack's multi-round-qa shape (shared system prompt 1,000, user history 2,000, answers 100 tokens, 5 rounds) with 80 users starting at 4 per second (Poisson) and 2 s mean think time instead of 10 users at 0.5 QPS, so that the fleet is busy. Each user is closed loop: the next round is sent after the previous answer finished plus the think time, and carries the whole conversation with the answer text the engine returned, so everything up to the previous question is a cache hit on the engine that served the previous round. The previous answer itself is mostly recomputed: the simulator's answer starts at a random token of its corpus, usually one with a leading space, which the Llama 3 chat template trims and so re-encodes differently (a real model's answer re-encodes to the tokens it generated). The best possible hit rate is about 83 %."},
		{Name: "long multi-turn chat (12 users × 22 rounds, sys 1000, history 8000, q 1000, answer 150)", Kind: KindMultiTurn,
			Groups: 12, PerGroup: 22, SystemTokens: 1000, HistoryTokens: 8000, QuestionTokens: 1000, OutputTokens: 150,
			Rate: 1, ThinkTime: 1, Seed: 8, MaxModelLen: 65536,
			About: "The multi-turn shape made long: 22 rounds per user, 8,000 tokens of history in the first message and 1,000-token questions, so that the last round sends about 34k tokens (1,000 system + 8,000 history + 21 × (1,000 question + 150 answer) + 1,000) and the conversation outgrows the 8 KiB prompt window the router gives plugins without a tokenizer block; the engines' context is raised from 32,768 to 65,536 tokens (Llama 3.1 takes 128k). 12 users starting one per second with 1 s mean think time: enough to keep four engines busy (their prefill of a cache miss is seconds long at this length) while a policy runs about a minute and a half; 12 × 34k tokens (~410k) fit in the fleet's ~1.7M tokens of KV cache, so a policy that keeps each conversation on one engine loses nothing to eviction. The best possible hit rate is about 93 %: each round recomputes its question and, as in the short multi-turn workload, most of the previous answer, and the first round its 9,000-token history."},
		{Name: "ShareGPT-like lengths (800 requests, no sharing, 40 req/s)", Kind: KindShareGPT, Groups: 800, PerGroup: 1,
			Rate: 40, Seed: 5,
			About: "Input and output lengths drawn from lognormals (input median 125, σ 1.2; output median 130, σ 1.0; both 4–1,024 as llm-d caps them) whose means after the caps (≈230 and ≈203 tokens) match vLLM's ShareGPT run with the Llama 3 tokenizer (1,000 prompts: 229,711 input and 203,068 output tokens, vllm-project/vllm#18566); no shared prefixes."},
	}
}

type request struct {
	at        float64 // simulated seconds from start
	system, q string
	maxTokens int
	// history is the conversation before q (multi-turn), filled in when the
	// request is sent.
	history []tokenizer.Message
}

// session is a sequence of requests sent one after the other: an open-loop
// request is a session of one turn.
type session struct {
	start   float64
	turns   []request
	think   []float64 // simulated seconds before turn i+1
	chained bool      // each turn carries the conversation so far
	first   int       // index of the first turn in the results
}

var vocab = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will can more about out up
them some could what into than time only other new two may first then do any like my now over such our man me even
most made after also did many before must through back years where much your way well down should because each just
those people how too little state good very make world still own see men work long get here between both life being
under never day same another know while last might us great old year off come since against go came right used take
three`)

func words(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocab[r.IntN(len(vocab))])
	}
	return b.String()
}

func jitter(r *rand.Rand, mean int) int { return max(1, int(float64(mean)*(0.7+0.6*r.Float64()))) }

// shareGPTLengths draws an input and an output length (in tokens) from
// lognormals capped to 4–1,024 whose capped means match vLLM's ShareGPT
// sample (≈230 input tokens with the chat template, ≈203 output tokens).
func shareGPTLengths(r *rand.Rand) (in, out int) {
	ln := func(median, sigma float64) int {
		return min(1024, max(4, int(median*math.Exp(sigma*r.NormFloat64()))))
	}
	return ln(125, 1.2), ln(130, 1.0)
}

// Requests generates an open-loop workload: groups interleaved in random
// order, with exponential inter-arrival times. Multi-turn workloads return
// each user's first round only; use sessions.
func (w Workload) Requests() []request {
	if w.Kind == KindMultiTurn {
		var reqs []request
		for _, s := range w.sessions() {
			reqs = append(reqs, s.turns[0])
		}
		return reqs
	}
	r := rand.New(rand.NewPCG(w.Seed, 7))
	var reqs []request
	if w.Kind == KindShareGPT {
		for i := 0; i < w.Groups*max(w.PerGroup, 1); i++ {
			in, out := shareGPTLengths(r)
			reqs = append(reqs, request{q: words(r, in), maxTokens: out})
		}
	} else {
		systems := make([]string, w.Groups)
		for g := range systems {
			if w.SystemTokens > 0 {
				systems[g] = fmt.Sprintf("You are assistant %d. ", g) + words(r, w.SystemTokens)
			}
		}
		for g := 0; g < w.Groups; g++ {
			for i := 0; i < w.PerGroup; i++ {
				reqs = append(reqs, request{system: systems[g], q: words(r, jitter(r, w.QuestionTokens)), maxTokens: jitter(r, w.OutputTokens)})
			}
		}
		r.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	}
	if w.Kind == KindClosed {
		return reqs // all at once: the clients pace themselves
	}
	t := 0.0
	for i := range reqs {
		t += r.ExpFloat64() / w.Rate
		reqs[i].at = t
	}
	return reqs
}

// sessions generates the workload as sessions in start order, with their
// result offsets.
func (w Workload) sessions() []session {
	var ss []session
	if w.Kind == KindClosed {
		reqs := w.Requests()
		ss = make([]session, max(1, min(w.Clients, len(reqs))))
		for i, q := range reqs {
			s := &ss[i%len(ss)]
			s.turns = append(s.turns, q)
			if len(s.turns) > 1 {
				s.think = append(s.think, 0)
			}
		}
	} else if w.Kind != KindMultiTurn {
		for _, q := range w.Requests() {
			ss = append(ss, session{start: q.at, turns: []request{q}})
		}
	} else {
		r := rand.New(rand.NewPCG(w.Seed, 7))
		system := "You are a helpful assistant. " + words(r, w.SystemTokens)
		t := 0.0
		for u := 0; u < w.Groups; u++ {
			t += r.ExpFloat64() / w.Rate
			s := session{start: t, chained: true}
			for k := 0; k < w.PerGroup; k++ {
				q := words(r, jitter(r, w.QuestionTokens))
				if k == 0 {
					q = fmt.Sprintf("I am user %d. Here is what we discussed before: ", u) + words(r, w.HistoryTokens) + "\n\n" + q
				}
				s.turns = append(s.turns, request{at: t, system: system, q: q, maxTokens: jitter(r, w.OutputTokens)})
				if k > 0 {
					s.think = append(s.think, r.ExpFloat64()*w.ThinkTime)
				}
			}
			ss = append(ss, s)
		}
	}
	slices.SortStableFunc(ss, func(a, b session) int { return cmpFloat(a.start, b.start) })
	n := 0
	for i := range ss {
		ss[i].first = n
		n += len(ss[i].turns)
	}
	return ss
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (q request) messages() []tokenizer.Message {
	var m []tokenizer.Message
	if q.system != "" {
		m = append(m, tokenizer.Message{Role: "system", Content: q.system})
	}
	m = append(m, q.history...)
	return append(m, tokenizer.Message{Role: "user", Content: q.q})
}

func (q request) body(model string) []byte {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	var ms []msg
	for _, m := range q.messages() {
		ms = append(ms, msg{m.Role, m.Content})
	}
	b, _ := json.Marshal(map[string]any{"model": model, "messages": ms, "max_tokens": q.maxTokens, "ignore_eos": true,
		"stream": true, "stream_options": map[string]bool{"include_usage": true}})
	return b
}
