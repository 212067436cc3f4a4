package bench

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"sync"
	"time"
)

// This file holds the pure parts of the fairness bench: Jain's index,
// per-window sums of served tokens, and upstream's fairness mode
// reproduced as a comparison policy.

// jain is Jain's fairness index of x: (Σx)² / (n·Σx²), 1 when all are
// equal, 1/n when one takes everything. An empty or all-zero x is 1
// (nothing to share, nothing unfair).
func jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if len(x) == 0 || s2 == 0 {
		return 1
	}
	return s * s / (float64(len(x)) * s2)
}

// served is one completed request as the fairness windows count it: the
// tenant and the weighted tokens it was served, at its completion time
// (since the start of the run).
type served struct {
	tenant string
	at     time.Duration
	tokens float64
}

// windowSums adds the served tokens of each tenant (in tenants' order) per
// window of width w from start to end; a window that does not fit
// wholly before end is dropped. Each tenant's sum is divided by its weight
// (weights[tenant], default 1), so that equal values are a fair share.
func windowSums(ev []served, tenants []string, weights map[string]float64, start, end, w time.Duration) [][]float64 {
	if w <= 0 || end-start < w {
		return nil
	}
	n := int((end - start) / w)
	idx := map[string]int{}
	for i, t := range tenants {
		idx[t] = i
	}
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, len(tenants))
	}
	for _, e := range ev {
		i, ok := idx[e.tenant]
		if !ok || e.at < start {
			continue
		}
		k := int((e.at - start) / w)
		if k >= n {
			continue
		}
		out[k][i] += e.tokens
	}
	for _, row := range out {
		for i, t := range tenants {
			if wt, ok := weights[t]; ok && wt > 0 {
				row[i] /= wt
			}
		}
	}
	return out
}

// windowJain is Jain's index of each window's sums, their mean and their
// minimum.
func windowJain(sums [][]float64) (per []float64, mean, low float64) {
	low = 1
	for _, row := range sums {
		j := jain(row)
		per = append(per, j)
		mean += j
		low = math.Min(low, j)
	}
	if len(per) > 0 {
		mean /= float64(len(per))
	}
	return per, mean, low
}

// Upstream's fairness mode (volcano-sh/kthena, ENABLE_FAIRNESS_SCHEDULING),
// reproduced from its description (our reference notes, section 3.6) as
// a policy in front of a router that does not queue:
//   - a request's priority is tokenWeight × the user's weighted tokens
//     (1·input + 2·output) over a sliding window (5 minutes by default)
//     plus requestNumWeight (0 by default) × its requests in the window;
//     lower goes first. The priority is computed when the request is
//     queued (the dequeue-time refresh is off by default).
//   - requests of one user leave in arrival order; between users, lower
//     priority first, then arrival.
//   - dequeue in semaphore mode: at most MaxConcurrent requests in flight
//     (the ticker mode's fixed 100 QPS does not follow the engines, so the
//     bench gives upstream the same in-flight bound as Kthena's queue).
//   - a request that waits longer than the queue timeout (60 s) fails
//     with 504.
//
// Tokens are recorded when the response ends, as upstream's tracker is fed
// from the response's usage.

// upstreamSettings are upstream's knobs with their defaults in
// newUpstreamGate.
type upstreamSettings struct {
	MaxConcurrent              int
	Window                     time.Duration
	InputWeight, OutputWeight  float64
	TokenWeight, RequestWeight float64
	Timeout                    time.Duration
}

func defaultUpstreamSettings(maxConcurrent int) upstreamSettings {
	return upstreamSettings{MaxConcurrent: maxConcurrent, Window: 5 * time.Minute, InputWeight: 1, OutputWeight: 2,
		TokenWeight: 1, RequestWeight: 0, Timeout: time.Minute}
}

var errUpstreamTimeout = errors.New("upstream fairness queue timeout")

type usageEvent struct {
	at     time.Time
	tokens float64
}

type upWaiter struct {
	user     string
	priority float64
	seq      uint64
	ready    chan struct{}
	index    int
	done     bool
}

// upstreamLess is upstream's heap order: one user's requests in arrival
// order; between users lower priority first, then arrival.
func upstreamLess(a, b *upWaiter) bool {
	if a.user == b.user {
		return a.seq < b.seq
	}
	if a.priority != b.priority {
		return a.priority < b.priority
	}
	return a.seq < b.seq
}

type upHeap []*upWaiter

func (h upHeap) Len() int           { return len(h) }
func (h upHeap) Less(i, j int) bool { return upstreamLess(h[i], h[j]) }
func (h upHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *upHeap) Push(x any) {
	w := x.(*upWaiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *upHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}

// upstreamGate is the reproduced policy. It is safe for concurrent use.
type upstreamGate struct {
	s        upstreamSettings
	now      func() time.Time
	mu       sync.Mutex
	inflight int
	seq      uint64
	waiting  upHeap
	usage    map[string][]usageEvent
}

func newUpstreamGate(s upstreamSettings, now func() time.Time) *upstreamGate {
	if now == nil {
		now = time.Now
	}
	return &upstreamGate{s: s, now: now, usage: map[string][]usageEvent{}}
}

// priority is the user's priority now (the lock is held).
func (g *upstreamGate) priority(user string, now time.Time) float64 {
	ev := g.usage[user]
	cut := 0
	for cut < len(ev) && now.Sub(ev[cut].at) > g.s.Window {
		cut++
	}
	ev = ev[cut:]
	g.usage[user] = ev
	tokens := 0.0
	for _, e := range ev {
		tokens += e.tokens
	}
	return g.s.TokenWeight*tokens + g.s.RequestWeight*float64(len(ev))
}

// Acquire waits for the request's turn and returns how long it waited.
func (g *upstreamGate) Acquire(ctx context.Context, user string) (time.Duration, error) {
	start := g.now()
	g.mu.Lock()
	if len(g.waiting) == 0 && g.inflight < g.s.MaxConcurrent {
		g.inflight++
		g.mu.Unlock()
		return 0, nil
	}
	g.seq++
	w := &upWaiter{user: user, priority: g.priority(user, start), seq: g.seq, ready: make(chan struct{})}
	heap.Push(&g.waiting, w)
	g.mu.Unlock()
	t := time.NewTimer(g.s.Timeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
	case <-t.C:
		err = errUpstreamTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !w.done {
		heap.Remove(&g.waiting, w.index)
		return g.now().Sub(start), err
	}
	return g.now().Sub(start), nil
}

// Release ends an admitted request, records its tokens and lets the next
// waiters in.
func (g *upstreamGate) Release(user string, input, output int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if tok := g.s.InputWeight*float64(input) + g.s.OutputWeight*float64(output); tok > 0 {
		g.usage[user] = append(g.usage[user], usageEvent{at: g.now(), tokens: tok})
	}
	for len(g.waiting) > 0 && g.inflight < g.s.MaxConcurrent {
		w := heap.Pop(&g.waiting).(*upWaiter)
		w.done = true
		g.inflight++
		close(w.ready)
	}
}

// Waiting is the number of queued requests.
func (g *upstreamGate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting)
}
