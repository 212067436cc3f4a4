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

// The calibration stays within 15 % of every published figure it cites.
// These are simulated quantities (virtual time), not timings.
func TestFidelityWithinTolerance(t *testing.T) {
	rows, err := RunFidelity(context.Background())
	require.NoError(t, err)
	checked := 0
	for _, r := range rows {
		assert.Positive(t, r.Simulated, "%s %s %s", r.Profile, r.Quantity, r.Condition)
		if r.Published == 0 {
			continue
		}
		checked++
		assert.InDelta(t, 1.0, r.Ratio(), 0.15, "%s %s %s: simulated %.2f vs published %.2f (%s)",
			r.Profile, r.Quantity, r.Condition, r.Simulated, r.Published, r.Source)
	}
	assert.GreaterOrEqual(t, checked, 4)
	assert.Contains(t, FormatFidelity(rows), "| llama-3.1-8b-h100 | decode step (ITL) | batch 1")
}
