package bench

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cost benchmark at a small size, 50x faster than real time: checks
// that every stream delivers all its tokens. The real-time figure comes from
// `kthena-sim bench cost`.
func TestCostHarnessSmall(t *testing.T) {
	r, err := RunCost(context.Background(), CostOptions{Engines: 2, Concurrency: 20, OutputTokens: 32, Rounds: 1, TimeScale: 0.02})
	require.NoError(t, err)
	assert.Zero(t, r.Failed)
	assert.Equal(t, int64(20*32), r.Tokens)
	assert.Contains(t, FormatCost(r), "| 2 | 20 | 32 |")
}

func BenchmarkFleetStreaming(b *testing.B) {
	for range b.N {
		r, err := RunCost(context.Background(), CostOptions{Engines: 4, Concurrency: 64, OutputTokens: 64, Rounds: 1, TimeScale: 0.05})
		if err != nil || r.Failed > 0 {
			b.Fatal(err, r.Failed)
		}
		b.ReportMetric(float64(r.CPUPerToken().Nanoseconds()), "cpu-ns/token")
	}
}
