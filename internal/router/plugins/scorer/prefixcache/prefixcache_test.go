package prefixcache

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/tokenizer"
)

func req(prompt string) *framework.Request {
	return &framework.Request{UpstreamModel: "m", Prompt: []byte(prompt)}
}

func TestScoreLongestPrefix(t *testing.T) {
	block := func(c string) string { return strings.Repeat(c, 4) }
	cases := []struct {
		name   string
		record map[string]string // engine -> prompt sent
		prompt string
		want   []float64 // a, b, c
	}{
		{"no history", nil, block("x") + block("y"), []float64{0, 0, 0}},
		{"full match", map[string]string{"a": block("x") + block("y")}, block("x") + block("y"), []float64{1, 0, 0}},
		{"longer prefix wins", map[string]string{"a": block("x"), "b": block("x") + block("y")}, block("x") + block("y") + block("z") + block("w"), []float64{0.25, 0.5, 0}},
		{"divergent first block", map[string]string{"a": block("q") + block("y")}, block("x") + block("y"), []float64{0, 0, 0}},
		{"partial block ignored", map[string]string{"a": block("x")}, block("x") + "ab", []float64{1, 0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := New(Args{BlockSizeToHash: 4})
			for k, pr := range c.record {
				p.PreRequest(context.Background(), req(pr), &framework.Endpoint{Key: k})
			}
			eps := []*framework.Endpoint{{Key: "a"}, {Key: "b"}, {Key: "c"}}
			out := make([]float64, 3)
			p.Score(context.Background(), req(c.prompt), eps, out)
			for i := range out {
				if out[i] != c.want[i] {
					t.Fatalf("scores %v want %v", out, c.want)
				}
			}
		})
	}
}

func TestModelSeparatesPrefixes(t *testing.T) {
	p := New(Args{BlockSizeToHash: 4})
	p.PreRequest(context.Background(), &framework.Request{UpstreamModel: "m1", Prompt: []byte("aaaabbbb")}, &framework.Endpoint{Key: "a"})
	out := make([]float64, 1)
	p.Score(context.Background(), &framework.Request{UpstreamModel: "m2", Prompt: []byte("aaaabbbb")}, []*framework.Endpoint{{Key: "a"}}, out)
	if out[0] != 0 {
		t.Fatalf("other model matched: %v", out)
	}
}

func TestLRUEvictsAndRemovalPurges(t *testing.T) {
	p := New(Args{BlockSizeToHash: 4, MaxHashCacheSize: 2})
	evicted := 0
	p.OnEvict(func(n int) { evicted += n })
	p.Record("a", hashesOf("m", []byte("aaaabbbbcccc"), 4, 128, 0))
	if evicted != 1 || p.Entries() != 2 {
		t.Fatalf("evicted %d entries %d, want 1 and 2", evicted, p.Entries())
	}
	// The first block was evicted, so the chain no longer matches from 0.
	if m := p.Match(hashesOf("m", []byte("aaaabbbbcccc"), 4, 128, 0)); len(m) != 0 {
		t.Fatalf("match after eviction = %v", m)
	}
	p.Record("b", hashesOf("m", []byte("xxxx"), 4, 128, 0))
	p.EndpointRemoved("b")
	if m := p.Match(hashesOf("m", []byte("xxxx"), 4, 128, 0)); len(m) != 0 {
		t.Fatalf("removed engine still matched: %v", m)
	}
}

func TestTopK(t *testing.T) {
	p := New(Args{BlockSizeToHash: 4, TopKMatches: 1})
	p.Record("a", hashesOf("m", []byte("aaaa"), 4, 128, 0))
	p.Record("b", hashesOf("m", []byte("aaaabbbb"), 4, 128, 0))
	out := make([]float64, 2)
	p.Score(context.Background(), req("aaaabbbb"), []*framework.Endpoint{{Key: "a"}, {Key: "b"}}, out)
	if out[0] != 0 || out[1] != 1 {
		t.Fatalf("top-1 scores %v", out)
	}
}

// TestHashesChain checks the chain definition hᵢ = xxh64(decimal(hᵢ₋₁) ‖
// blockᵢ) against a streaming digest, for block sizes on both sides of the
// stack buffer.
func TestHashesChain(t *testing.T) {
	prompt := []byte(strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40))
	for _, bs := range []int{4, 64, 100} {
		got := hashesOf("model-a", prompt, bs, 7, 0)
		if len(got) != 7 {
			t.Fatalf("block %d: %d hashes, want 7", bs, len(got))
		}
		prev := xxhash.Sum64String("model-a")
		for i, h := range got {
			d := xxhash.New()
			_, _ = d.WriteString(strconv.FormatUint(prev, 10))
			_, _ = d.Write(prompt[i*bs : (i+1)*bs])
			if prev = d.Sum64(); h != prev {
				t.Fatalf("block %d: hash %d = %x, want %x", bs, i, h, prev)
			}
		}
	}
	if hs := hashesOf("m", []byte("abc"), 4, 7, 0); len(hs) != 0 {
		t.Fatalf("partial block hashed: %v", hs)
	}
}

// A conversation keeps matching the engine that served its earlier turns
// well past the first maxBlocksToMatch blocks: two conversations share a
// 10 KiB system prompt (longer than the 8 KiB upstream window, in which
// they would tie) and grow over 20 rounds past 32k tokens.
func TestLongConversationsKeepMatching(t *testing.T) {
	tok, err := tokenizer.New("")
	if err != nil {
		t.Fatal(err)
	}
	p := New(Args{})
	system := "system: " + strings.Repeat("Shared policy text for every user. ", 300) + "\n"
	conv := map[string]string{"a": system, "b": system}
	for round := range 20 {
		for _, who := range []string{"a", "b"} {
			conv[who] += fmt.Sprintf("user: round %d from %s: %s\n", round, who, strings.Repeat("tell me more about the details ", 140))
			r := req(conv[who])
			ownEngineLeads(t, p, r, round, who, len(conv[who]))
			conv[who] += fmt.Sprintf("assistant: %s\n", strings.Repeat("here are more details on that ", 140))
		}
	}
	if n := tok.Count(conv["a"]); n < 32_000 {
		t.Fatalf("conversation is %d tokens, want > 32k", n)
	}
	if len(conv["a"]) > New(Args{}).MaxPromptBytes() {
		t.Fatalf("conversation exceeds the default bound")
	}
}

// As the director hands requests over (an 8 KiB flattened window, the raw
// JSON of the messages), long conversations keep matching their engine
// and the whole prompt is never rendered.
func TestLongConversationsMatchFromRawJSON(t *testing.T) {
	p := New(Args{})
	system := strings.Repeat("Shared policy text for every user. ", 300)
	conv := map[string][]map[string]string{"a": {{"role": "system", "content": system}}, "b": {{"role": "system", "content": system}}}
	for round := range 20 {
		for _, who := range []string{"a", "b"} {
			conv[who] = append(conv[who], map[string]string{"role": "user", "content": fmt.Sprintf("round %d from %s: %s", round, who, strings.Repeat("tell me more about the \"details\"\n", 140))})
			body, err := json.Marshal(map[string]any{"model": "m", "messages": conv[who]})
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := openai.Parse(body, 8192)
			if err != nil {
				t.Fatal(err)
			}
			r := &framework.Request{UpstreamModel: "m", Prompt: parsed.Prompt, PromptJSON: parsed.PromptJSON(body), PromptBytes: parsed.PromptBytes,
				RenderWholePrompt: func() []byte { t.Fatal("the whole prompt was rendered"); return nil }}
			ownEngineLeads(t, p, r, round, who, len(body))
			conv[who] = append(conv[who], map[string]string{"role": "assistant", "content": strings.Repeat("here are more details on that ", 140)})
		}
	}
}

// The hashed prompt is bounded by maxPromptBytes.
func TestMaxPromptBytesBoundsHashes(t *testing.T) {
	prompt := []byte(strings.Repeat("x", 1<<20))
	hs := hashesOf("m", prompt, 64, 128, 64<<10)
	if want := 128 + (64<<10-128*64)/(64*LongBlockFactor); len(hs) != want {
		t.Fatalf("%d hashes, want %d", len(hs), want)
	}
}

// hashesOf hashes a whole flattened prompt as the plugin does when the
// request carries no raw JSON.
func hashesOf(model string, prompt []byte, bs, maxBlocks, maxBytes int) []uint64 {
	cut := min(len(prompt), bs*maxBlocks)
	return Hashes(model, prompt[:cut], prompt[cut:], bs, maxBlocks, maxBytes, nil)
}

// ownEngineLeads scores round's request of conversation who ("a" or "b")
// on engines a and b, fails unless the engine that served the conversation
// so far leads (and by round 19 matches 90 % of it), then records the
// request there.
func ownEngineLeads(t *testing.T, p *Plugin, r *framework.Request, round int, who string, size int) {
	t.Helper()
	out := make([]float64, 2)
	p.Score(context.Background(), r, []*framework.Endpoint{{Key: "a"}, {Key: "b"}}, out)
	mine, other := out[0], out[1]
	if who == "b" {
		mine, other = other, mine
	}
	if round > 0 && (mine <= other || (round == 19 && mine < 0.9)) {
		t.Fatalf("round %d, conversation %s (%d bytes): own engine %.3f, other %.3f", round, who, size, mine, other)
	}
	p.PreRequest(context.Background(), r, &framework.Endpoint{Key: who})
}
