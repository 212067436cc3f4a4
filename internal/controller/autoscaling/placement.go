package autoscaling

import (
	"math"
	"sort"
)

// costTarget is one ModelServing of a heterogeneous target.
type costTarget struct {
	cost   int32
	lo, hi int32
}

// block is a slice of one target's spare capacity (hi - lo).
type block struct {
	target, ordinal int
	size            int32
	cost            int64
}

// blockSizes splits capacity into blocks of 1, r, r², ... (each rounded up
// and growing by at least one); the last block holds what is left. A rate
// of 1 or less makes one block of the whole capacity. nominal are the
// untruncated sizes, which rank the blocks.
func blockSizes(capacity int32, rate float64) (sizes, nominal []int32) {
	if capacity <= 0 {
		return nil, nil
	}
	if rate <= 1 {
		return []int32{capacity}, []int32{capacity}
	}
	size, left := int32(1), capacity
	for left > 0 {
		s := min(size, left)
		sizes = append(sizes, s)
		nominal = append(nominal, size)
		left -= s
		next := math.Ceil(float64(size) * rate)
		size = int32(min(max(next, float64(size)+1), math.MaxInt32))
	}
	return sizes, nominal
}

// place spreads total replicas over targets, cheapest capacity first: each
// target starts at its minimum, then the blocks of every target's spare
// capacity are taken in order of block cost (cost × size), ties by target
// order then block order, until total is reached. Small cheap blocks go
// first, and an expensive target is used in growing chunks as the cheap
// ones' blocks grow. Placement is monotonic: a larger total never lowers a
// target. total is clamped to [Σlo, Σhi].
func place(targets []costTarget, total int32, ratePercent int32) []int32 {
	out := make([]int32, len(targets))
	var blocks []block
	left := total
	for i, t := range targets {
		out[i] = t.lo
		left -= t.lo
		sizes, nominal := blockSizes(t.hi-t.lo, float64(ratePercent)/100)
		for k, s := range sizes {
			blocks = append(blocks, block{target: i, ordinal: k, size: s, cost: int64(t.cost) * int64(nominal[k])})
		}
	}
	sort.SliceStable(blocks, func(a, b int) bool {
		x, y := blocks[a], blocks[b]
		if x.cost != y.cost {
			return x.cost < y.cost
		}
		if x.target != y.target {
			return x.target < y.target
		}
		return x.ordinal < y.ordinal
	})
	for _, b := range blocks {
		if left <= 0 {
			break
		}
		n := min(b.size, left)
		out[b.target] += n
		left -= n
	}
	return out
}
