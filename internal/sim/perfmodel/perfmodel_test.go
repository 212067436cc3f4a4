package perfmodel

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBuiltinProfilesAreValid(t *testing.T) {
	for _, name := range Builtin().Names() {
		p, err := Builtin().Lookup(name)
		require.NoError(t, err)
		require.NoError(t, p.Validate())
		assert.Greater(t, p.KVCacheBlocks(16), 1000, "%s leaves room for KV cache", name)
	}
	_, err := Builtin().Lookup("nope")
	assert.Error(t, err)
}

func TestDecodeIsMemoryBoundAndPrefillComputeBound(t *testing.T) {
	p, _ := Builtin().Lookup(DefaultProfile)
	one := p.StepTime(Batch{DecodeSeqs: 1, DecodeContext: 512})
	eight := p.StepTime(Batch{DecodeSeqs: 8, DecodeContext: 8 * 512})
	// Decode at small batch reads the same weights: nearly flat in batch.
	assert.Less(t, float64(eight)/float64(one), 1.2)
	// ~16 GB of weights at ~2.7 TB/s achieved: 6-7 ms plus overhead.
	assert.InDelta(t, 7.0, one.Seconds()*1000, 1.0)

	short := p.StepTime(Batch{PrefillTokens: 1024, PrefillContext: ContextSum(0, 1024)})
	long := p.StepTime(Batch{PrefillTokens: 4096, PrefillContext: ContextSum(0, 4096)})
	// Prefill grows with tokens (at least linearly once compute-bound).
	assert.Greater(t, float64(long)/float64(short), 3.5)
}

func TestCachedPrefixCutsPrefill(t *testing.T) {
	p, _ := Builtin().Lookup(DefaultProfile)
	cold := p.PrefillTime(0, 4096, 8192)
	warm := p.PrefillTime(3840, 256, 8192)
	assert.Less(t, warm, cold/4)
	assert.Greater(t, warm, time.Duration(0))
}

func TestKVTransferScalesWithTokens(t *testing.T) {
	p, _ := Builtin().Lookup(DefaultProfile)
	// 128 KiB per token for Llama-3.1-8B; 8k tokens = 1 GiB at 25 GB/s ≈ 43 ms.
	assert.Equal(t, 131072.0, p.Model.KVBytesPerToken())
	assert.InDelta(t, 0.045, p.KVTransferTime(8192).Seconds(), 0.005)
	assert.Zero(t, p.KVTransferTime(0))
}
