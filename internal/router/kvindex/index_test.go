package kvindex

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
)

var gpuFirst = [3]float64{1, 0.5, 0.25}

func toks(n, base int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = base + i
	}
	return out
}

// engineHashes are the hashes a vLLM engine would report (sha256_cbor).
func engineHashes(tokens []int, bs int, lora string) []kvevents.BlockHash {
	var extra []string
	if lora != "" {
		extra = []string{lora}
	}
	var out []kvevents.BlockHash
	for _, h := range kvcache.NewHasher("").Chain(tokens, bs, extra) {
		out = append(out, kvevents.BlockHash(append([]byte(nil), h[:]...)))
	}
	return out
}

// store is the BlockStored of blocks [from, to) of tokens.
func store(tokens []int, bs, from, to int, medium, lora string) kvevents.BlockStored {
	hs := engineHashes(tokens, bs, lora)
	ev := kvevents.BlockStored{BlockHashes: hs[from:to], TokenIDs: tokens[from*bs : to*bs], BlockSize: bs, Medium: medium, LoRAName: lora}
	if from > 0 {
		ev.ParentBlockHash = hs[from-1]
	}
	return ev
}

func batch(evs ...kvevents.Event) kvevents.Batch { return kvevents.Batch{TS: 1, Events: evs} }

func matched(x *Index, tokens []int, bs int, lora, pod string) Match {
	return x.Lookup(Keys(tokens, false, lora, bs, 0), []string{pod}, gpuFirst)[pod]
}

func TestIndexStoresRemovesClears(t *testing.T) {
	x := New(0)
	w := x.AddPod("ns/a")
	p := toks(64, 1000) // 4 blocks of 16
	assert.False(t, x.Known("ns/a"))

	// Two events: blocks 0-1, then 2-3 chained to block 1 by its hash.
	w.Apply(0, batch(store(p, 16, 0, 2, "GPU", "")))
	w.Apply(1, batch(store(p, 16, 2, 4, "GPU", "")))
	assert.True(t, x.Known("ns/a"))
	assert.Equal(t, 16, x.BlockSize("ns/a"))
	assert.Equal(t, Match{Blocks: 4, Weighted: 4}, matched(x, p, 16, "", "ns/a"))
	assert.Equal(t, 4, x.Entries())

	// A prompt that diverges in block 2 matches two blocks.
	q := append(append([]int(nil), p[:40]...), toks(24, 5000)...)
	assert.Equal(t, 2, matched(x, q, 16, "", "ns/a").Blocks)

	// Removing block 1 cuts the prefix there.
	hs := engineHashes(p, 16, "")
	w.Apply(2, batch(kvevents.BlockRemoved{BlockHashes: hs[1:2], Medium: "GPU"}))
	assert.Equal(t, 1, matched(x, p, 16, "", "ns/a").Blocks)
	assert.Equal(t, 3, x.Entries())

	// Offloaded copies weigh less; the GPU copy wins while both exist.
	w.Apply(3, batch(store(p, 16, 0, 2, "CPU", "")))
	assert.Equal(t, Match{Blocks: 4, Weighted: 1 + 0.5 + 1 + 1}, matched(x, p, 16, "", "ns/a"))

	// LoRA blocks only match the same adapter.
	w.Apply(4, batch(store(p, 16, 0, 4, "GPU", "sql")))
	assert.Equal(t, 4, matched(x, p, 16, "sql", "ns/a").Blocks)
	assert.Equal(t, 0, matched(x, p, 16, "other", "ns/a").Blocks)

	w.Apply(5, batch(kvevents.AllBlocksCleared{}))
	assert.Equal(t, 0, matched(x, p, 16, "", "ns/a").Blocks)
	assert.Equal(t, 0, x.Entries())

	// An unknown pod is absent, a departed one forgotten.
	assert.Empty(t, x.Lookup(Keys(p, false, "", 16, 0), []string{"ns/unknown"}, gpuFirst))
	w.Apply(6, batch(store(p, 16, 0, 4, "GPU", "")))
	x.RemovePod("ns/a")
	assert.Zero(t, x.Entries())
	assert.False(t, x.Known("ns/a"))
	w.Apply(7, batch(store(p, 16, 0, 4, "GPU", "")))
	assert.Zero(t, x.Entries(), "a removed pod's writer is inert")
}

// vLLM caches equal content in two blocks when two requests compute it at
// once and reports both; removing one copy leaves the block cached.
func TestIndexCountsDuplicateCopies(t *testing.T) {
	x := New(0)
	w := x.AddPod("a")
	p := toks(32, 1)
	w.Apply(0, batch(store(p, 16, 0, 2, "GPU", ""), store(p, 16, 0, 2, "GPU", "")))
	hs := engineHashes(p, 16, "")
	w.Apply(1, batch(kvevents.BlockRemoved{BlockHashes: hs, Medium: "GPU"}))
	assert.Equal(t, 2, matched(x, p, 16, "", "a").Blocks)
	w.Apply(2, batch(kvevents.BlockRemoved{BlockHashes: hs, Medium: "GPU"}))
	assert.Equal(t, 0, matched(x, p, 16, "", "a").Blocks)
}

func TestIndexSequenceGapResyncs(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64
	}{{"gap", 12}, {"restart", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			x := New(0)
			w := x.AddPod("a")
			p, q := toks(32, 1), toks(32, 900)
			require.False(t, w.Apply(10, batch(store(p, 16, 0, 2, "GPU", ""))))
			// The next batch is not seq 11: what the pod held is dropped and
			// the batch starts a fresh view.
			require.True(t, w.Apply(tc.seq, batch(store(q, 16, 0, 2, "GPU", ""))))
			assert.Equal(t, 0, matched(x, p, 16, "", "a").Blocks, "no stale blocks")
			assert.Equal(t, 2, matched(x, q, 16, "", "a").Blocks)
			// Children of a dropped parent cannot be placed and are left out.
			r := toks(64, 1)
			w.Apply(tc.seq+1, batch(store(r, 16, 2, 4, "GPU", "")))
			assert.Equal(t, 0, matched(x, r, 16, "", "a").Blocks)
			assert.Equal(t, int64(2), x.Counters()["orphans"])
			assert.Equal(t, int64(1), x.Counters()["resyncs"])
		})
	}
}

func TestIndexMemoryBoundUnderFlood(t *testing.T) {
	const bound = 5000
	x := New(bound)
	ws := []*Writer{x.AddPod("a"), x.AddPod("b"), x.AddPod("c")}
	peak := 0
	for i := range 600 {
		for j, w := range ws {
			p := toks(256, (i*3+j)*1000)
			w.Apply(uint64(i), batch(store(p, 16, 0, 16, "GPU", "")))
			peak = max(peak, x.Entries())
		}
	}
	assert.LessOrEqual(t, peak, bound+16, "at most one batch over the bound before eviction")
	assert.LessOrEqual(t, x.Entries(), bound)
	assert.Greater(t, x.Counters()["evicted"], int64(20000))
	// Eviction keeps the pods balanced and the newest prompts.
	for _, pod := range []string{"a", "b", "c"} {
		assert.InDelta(t, bound/3, x.PodSize(pod), bound/10, pod)
	}
	newest := toks(256, (599*3)*1000)
	assert.Equal(t, 16, matched(x, newest, 16, "", "a").Blocks)
	// Shard maps hold exactly the pods' entries.
	n := 0
	for i := range x.shards {
		for _, hs := range x.shards[i].m {
			n += len(hs)
		}
	}
	assert.Equal(t, x.Entries(), n)
}

// TestBytesPerBlock measures the heap held per indexed (pod, block) entry.
func TestBytesPerBlock(t *testing.T) {
	for _, share := range []int{1, 4} {
		bpb := bytesPerBlock(t, 8, 25_600, share)
		t.Logf("bytes per indexed (pod, block) entry: %.0f (8 pods x 25,600 blocks, %d pod(s) holding each block)", bpb, share)
		assert.Less(t, bpb, 250.0)
	}
}

func bytesPerBlock(t testing.TB, pods, blocksPerPod, share int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x := New(0)
	for i := range pods {
		w := x.AddPod(fmt.Sprint("pod-", i))
		// Pods pair up on content, as a fleet serving shared prompts does.
		base := (i % (pods / share)) * 10_000_000
		for j := 0; j < blocksPerPod; j += 64 {
			p := toks(64*16, base+j*16)
			w.Apply(uint64(j/64), batch(store(p, 16, 0, 64, "GPU", "")))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, pods*blocksPerPod, x.Entries())
	runtime.KeepAlive(x)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(x.Entries())
}

// BenchmarkIngest is the subscriber's path per message: msgpack decoding
// and applying, 16 blocks of 16 tokens per BlockStored and a BlockRemoved of
// as many, across 8 pods, with the index at its bound.
func BenchmarkIngest(b *testing.B) {
	x := New(200_000)
	var ws []*Writer
	for i := range 8 {
		ws = append(ws, x.AddPod(fmt.Sprint("pod-", i)))
	}
	const msgs = 512
	payloads := make([][]byte, msgs)
	events := 0
	for i := range payloads {
		p := toks(256, i*1000)
		ev := []kvevents.Event{store(p, 16, 0, 16, "GPU", "")}
		if i > 0 {
			ev = append(ev, kvevents.BlockRemoved{BlockHashes: engineHashes(toks(256, (i-1)*1000), 16, ""), Medium: "GPU"})
		}
		events += len(ev)
		var err error
		payloads[i], err = kvevents.Codec{}.Encode(batch(ev...))
		require.NoError(b, err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		m := i % msgs
		bt, err := kvevents.Decode(payloads[m])
		if err != nil {
			b.Fatal(err)
		}
		ws[i%8].Apply(uint64(i/8), bt)
		n += len(bt.Events)
	}
	b.StopTimer()
	cpu := float64(threadCPU() - cpu0)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.N)*16/b.Elapsed().Seconds(), "blocks-stored/s")
	b.ReportMetric(cpu/float64(b.N), "cpu-ns/msg")
}

// threadCPU is the calling thread's CPU time in nanoseconds (Linux): on a
// shared machine wall time mostly measures waiting for a CPU.
func threadCPU() int64 {
	var ru syscall.Rusage
	const rusageThread = 1
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkLookup(b *testing.B) {
	x := New(0)
	p := toks(8192, 0)
	for i := range 8 {
		w := x.AddPod(fmt.Sprint("pod-", i))
		w.Apply(0, batch(store(p, 16, 0, 64*(i+1), "GPU", "")))
	}
	pods := x.Pods()
	keys := Keys(p, false, "", 16, 0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = x.Lookup(keys, pods, gpuFirst)
	}
}
