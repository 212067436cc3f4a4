package engine

import (
	"context"
	"testing"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/perfmodel"
)

// BenchmarkSchedulerPerToken is the engine core's cost without HTTP: a
// virtual-time engine runs 256 sequences of 256 output tokens.
func BenchmarkSchedulerPerToken(b *testing.B) {
	prof, _ := perfmodel.Builtin().Lookup(perfmodel.DefaultProfile)
	const seqs, out = 256, 256
	b.ReportAllocs()
	for range b.N {
		e, err := New(Options{Profile: &prof, NumBlocks: 26000, BlockSize: 16, MaxNumSeqs: 256, MaxNumBatchedTokens: 8192,
			PrefixCaching: true, MaxLoRAs: 1, Virtual: true, Hasher: kvcache.NewHasher("")})
		if err != nil {
			b.Fatal(err)
		}
		var streams []*Stream
		for i := 0; i < seqs; i++ {
			s, err := e.Submit(&Request{Prompt: tokens(128, i*300), Output: tokens(out, i), Finish: FinishLength})
			if err != nil {
				b.Fatal(err)
			}
			streams = append(streams, s)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go e.Run(ctx)
		for _, s := range streams {
			s.Wait(ctx)
		}
		cancel()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*seqs*out), "ns/token")
}
