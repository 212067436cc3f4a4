package engine

import "github.com/kthena/kthena/internal/sim/kvcache"

// Stats is a read-only snapshot of the engine.
type Stats struct {
	Running    int     `json:"running"`
	Waiting    int     `json:"waiting"`
	Held       int     `json:"held"`
	HeldBlocks int     `json:"heldBlocks"`
	KVUsage    float64 `json:"kvUsage"`
	UsedBlocks int     `json:"usedBlocks"`
	NumBlocks  int     `json:"numBlocks"`
	BlockSize  int     `json:"blockSize"`
	SimTime    float64 `json:"simTime"`
	Totals     Totals  `json:"totals"`
}

// Stats returns the current state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	held := 0
	for _, r := range e.held {
		held += len(r.state.table.Blocks)
	}
	return Stats{
		Running: len(e.running), Waiting: len(e.waiting), Held: len(e.held), HeldBlocks: held,
		KVUsage: e.cache.Usage(), UsedBlocks: e.cache.NumBlocks() - e.cache.NumFree(),
		NumBlocks: e.cache.NumBlocks(), BlockSize: e.o.BlockSize,
		SimTime: max(e.clock, e.simNow()), Totals: e.totals,
	}
}

// CachedPrefixTokens is how many tokens of a prompt would be served from
// this engine's prefix cache right now (whole blocks, leaving the last token
// to compute, as the scheduler does). lora is the adapter name or "".
func (e *Engine) CachedPrefixTokens(prompt []int, lora string) int {
	if !e.o.PrefixCaching || len(prompt) == 0 {
		return 0
	}
	var extra []string
	if lora != "" {
		extra = []string{lora}
	}
	hashes := e.cache.Hasher().Chain(prompt, e.o.BlockSize, extra)
	hashes = hashes[:min(len(hashes), (len(prompt)-1)/e.o.BlockSize)]
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cache.MatchPrefix(hashes) * e.o.BlockSize
}

// Hasher is the block hasher of the engine's prefix cache.
func (e *Engine) Hasher() kvcache.Hasher { return e.cache.Hasher() }
