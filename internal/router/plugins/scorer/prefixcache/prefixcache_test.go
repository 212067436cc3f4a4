package prefixcache

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/kthena/kthena/internal/router/framework"
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
	p.Record("a", Hashes("m", []byte("aaaabbbbcccc"), 4, 128, nil))
	if evicted != 1 || p.Entries() != 2 {
		t.Fatalf("evicted %d entries %d, want 1 and 2", evicted, p.Entries())
	}
	// The first block was evicted, so the chain no longer matches from 0.
	if m := p.Match(Hashes("m", []byte("aaaabbbbcccc"), 4, 128, nil)); len(m) != 0 {
		t.Fatalf("match after eviction = %v", m)
	}
	p.Record("b", Hashes("m", []byte("xxxx"), 4, 128, nil))
	p.EndpointRemoved("b")
	if m := p.Match(Hashes("m", []byte("xxxx"), 4, 128, nil)); len(m) != 0 {
		t.Fatalf("removed engine still matched: %v", m)
	}
}

func TestTopK(t *testing.T) {
	p := New(Args{BlockSizeToHash: 4, TopKMatches: 1})
	p.Record("a", Hashes("m", []byte("aaaa"), 4, 128, nil))
	p.Record("b", Hashes("m", []byte("aaaabbbb"), 4, 128, nil))
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
		got := Hashes("model-a", prompt, bs, 7, nil)
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
	if hs := Hashes("m", []byte("abc"), 4, 7, nil); len(hs) != 0 {
		t.Fatalf("partial block hashed: %v", hs)
	}
}
