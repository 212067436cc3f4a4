// Package fairness is the router's admission queue: while the engines of a
// ModelServer are saturated, requests wait in a queue per ModelServer and
// are admitted by tenant in order of a virtual token counter (VTC): each
// tenant's counter grows with the tokens it was served, input weighted 1
// and output 2 by default, divided by its weight, and the tenant with the
// smallest counter goes next. A tenant's share of served tokens so converges
// to its weight whatever the others send. Priority classes go first; a
// tenant that comes back after idling starts at the smallest active
// counter, so idling earns no burst of credit.
package fairness

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/router/metrics"
)

// Settings of the queue; they may change while requests wait.
type Settings struct {
	// MaxQueued bounds the requests waiting per ModelServer, and
	// MaxQueuedPerTenant those of one tenant in it (beyond either: 429).
	MaxQueued, MaxQueuedPerTenant int
	// Timeout is how long a request waits at most (504).
	Timeout time.Duration
	// InputWeight and OutputWeight weigh tokens in the counters.
	InputWeight, OutputWeight float64
	// TenantWeights give tenants a share other than 1.
	TenantWeights map[string]float64
}

// Outcomes other than admission.
var (
	ErrQueueFull  = errors.New("the queue is full")
	ErrTenantFull = errors.New("the tenant has too many requests waiting")
	ErrTimeout    = errors.New("no capacity within the queue timeout")
)

// Capacity reports how many requests a ModelServer's engines can take at
// once now (the caller's saturation signal); admitted requests count
// against it until released.
type Capacity func() int

// Queues holds a queue per ModelServer. It is safe for concurrent use.
type Queues struct {
	metrics *metrics.Metrics
	mu      sync.Mutex
	set     Settings
	queues  map[string]*queue
}

// New returns the queues.
func New(s Settings, m *metrics.Metrics) *Queues {
	return &Queues{set: s, metrics: m, queues: map[string]*queue{}}
}

// SetSettings replaces the settings.
func (q *Queues) SetSettings(s Settings) {
	q.mu.Lock()
	q.set = s
	q.mu.Unlock()
}

type queue struct {
	key      string
	capacity Capacity
	admitted int
	waiting  waitHeap
	seq      uint64
	// counters are the tenants' virtual token counters; active counts a
	// tenant's waiting and admitted requests.
	counters map[string]float64
	active   map[string]int
	queued   map[string]int
}

type waiter struct {
	tenant   string
	priority int
	seq      uint64
	counter  float64 // the tenant's counter when ordered
	ready    chan struct{}
	index    int
	done     bool
}

// Ticket is an admitted request; Release it when the response is done.
type Ticket struct {
	q      *Queues
	qu     *queue
	tenant string
	once   sync.Once
}

// Admit waits until the request of tenant (priority: higher first) may go
// to the ModelServer key, and charges its input tokens. It returns at once
// when nothing waits and capacity is free.
func (q *Queues) Admit(ctx context.Context, key, tenant string, priority, inputTokens int, capacity Capacity) (*Ticket, time.Duration, error) {
	start := time.Now()
	q.mu.Lock()
	qu := q.queues[key]
	if qu == nil {
		qu = &queue{key: key, counters: map[string]float64{}, active: map[string]int{}, queued: map[string]int{}}
		q.queues[key] = qu
	}
	qu.capacity = capacity
	set := q.set
	q.activate(qu, tenant)
	if len(qu.waiting) == 0 && qu.admitted < capacity() {
		t := q.admitLocked(qu, tenant, inputTokens)
		q.mu.Unlock()
		return t, 0, nil
	}
	switch {
	case set.MaxQueued > 0 && len(qu.waiting) >= set.MaxQueued:
		q.deactivate(qu, tenant)
		q.mu.Unlock()
		q.count(key, "queue_full")
		return nil, 0, fmt.Errorf("%w (%d requests wait for ModelServer %s)", ErrQueueFull, set.MaxQueued, key)
	case set.MaxQueuedPerTenant > 0 && qu.queued[tenant] >= set.MaxQueuedPerTenant:
		q.deactivate(qu, tenant)
		q.mu.Unlock()
		q.count(key, "tenant_full")
		return nil, 0, fmt.Errorf("%w (%d)", ErrTenantFull, set.MaxQueuedPerTenant)
	}
	qu.seq++
	w := &waiter{tenant: tenant, priority: priority, seq: qu.seq, counter: qu.counters[tenant], ready: make(chan struct{})}
	heap.Push(&qu.waiting, w)
	qu.queued[tenant]++
	q.gauge(key, len(qu.waiting))
	q.mu.Unlock()

	timer := time.NewTimer(set.Timeout)
	defer timer.Stop()
	var err error
	select {
	case <-w.ready:
	case <-timer.C:
		err = fmt.Errorf("%w (%s)", ErrTimeout, set.Timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	q.mu.Lock()
	if !w.done { // still waiting: leave
		heap.Remove(&qu.waiting, w.index)
		qu.queued[tenant]--
		q.deactivate(qu, tenant)
		q.gauge(key, len(qu.waiting))
		q.mu.Unlock()
		q.count(key, outcome(err))
		return nil, time.Since(start), err
	}
	t := q.admitLocked(qu, tenant, inputTokens)
	qu.admitted-- // admitLocked counted it; dispatch already had
	q.mu.Unlock()
	waited := time.Since(start)
	if m := q.metrics; m != nil {
		m.FairnessWait.WithLabelValues(key).Observe(waited.Seconds())
	}
	return t, waited, nil
}

func outcome(err error) string {
	if errors.Is(err, ErrTimeout) {
		return "timeout"
	}
	return "cancelled"
}

// admitLocked charges the input tokens and counts the request admitted.
func (q *Queues) admitLocked(qu *queue, tenant string, inputTokens int) *Ticket {
	qu.admitted++
	qu.counters[tenant] += float64(inputTokens) * q.set.InputWeight / q.weight(tenant)
	q.count(qu.key, "admitted")
	if m := q.metrics; m != nil && inputTokens > 0 {
		m.TenantTokens.WithLabelValues(qu.key, tenant).Add(float64(inputTokens) * q.set.InputWeight)
	}
	return &Ticket{q: q, qu: qu, tenant: tenant}
}

// Release ends an admitted request: its output tokens are charged and the
// next waiting requests are admitted if capacity allows.
func (t *Ticket) Release(outputTokens int) {
	if t == nil {
		return
	}
	t.once.Do(func() {
		q, qu := t.q, t.qu
		q.mu.Lock()
		qu.admitted--
		qu.counters[t.tenant] += float64(outputTokens) * q.set.OutputWeight / q.weight(t.tenant)
		if m := q.metrics; m != nil && outputTokens > 0 {
			m.TenantTokens.WithLabelValues(qu.key, t.tenant).Add(float64(outputTokens) * q.set.OutputWeight)
		}
		q.deactivate(qu, t.tenant)
		q.dispatchLocked(qu)
		q.mu.Unlock()
	})
}

// Run pokes the queues every interval until ctx ends: capacity also grows
// without a release (new pods, engines that drained their own queues, as
// the next scrape shows).
func (q *Queues) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			q.Poke()
		}
	}
}

// Poke admits waiting requests of every queue whose capacity allows it.
func (q *Queues) Poke() {
	q.mu.Lock()
	for _, qu := range q.queues {
		q.dispatchLocked(qu)
	}
	q.mu.Unlock()
}

// dispatchLocked admits waiters in order while capacity allows. The order
// is priority, then the tenant's counter now (not when it queued: others
// may have been served meanwhile), then arrival.
func (q *Queues) dispatchLocked(qu *queue) {
	if len(qu.waiting) == 0 {
		return
	}
	for i, w := range qu.waiting {
		w.counter = qu.counters[w.tenant]
		w.index = i
	}
	heap.Init(&qu.waiting)
	limit := qu.capacity()
	for len(qu.waiting) > 0 && qu.admitted < limit {
		w := heap.Pop(&qu.waiting).(*waiter)
		w.done = true
		qu.queued[w.tenant]--
		qu.admitted++ // the waiter's Admit takes it over
		close(w.ready)
		// The next waiter of the same tenant now sorts by the counter
		// this one will raise; re-rank lazily on the next dispatch.
	}
	q.gauge(qu.key, len(qu.waiting))
}

// activate lifts a tenant that was idle to the smallest counter among
// active tenants: no credit for idling.
func (q *Queues) activate(qu *queue, tenant string) {
	if qu.active[tenant] == 0 {
		low, any := 0.0, false
		for t, n := range qu.active {
			if n > 0 && (!any || qu.counters[t] < low) {
				low, any = qu.counters[t], true
			}
		}
		if any && qu.counters[tenant] < low {
			qu.counters[tenant] = low
		}
	}
	qu.active[tenant]++
}

func (q *Queues) deactivate(qu *queue, tenant string) {
	if qu.active[tenant]--; qu.active[tenant] <= 0 {
		delete(qu.active, tenant)
		delete(qu.queued, tenant)
	}
}

func (q *Queues) weight(tenant string) float64 {
	if w, ok := q.set.TenantWeights[tenant]; ok && w > 0 {
		return w
	}
	return 1
}

func (q *Queues) count(key, outcome string) {
	if m := q.metrics; m != nil {
		m.FairnessRequests.WithLabelValues(key, outcome).Inc()
	}
}

func (q *Queues) gauge(key string, n int) {
	if m := q.metrics; m != nil {
		m.FairnessQueued.WithLabelValues(key).Set(float64(n))
	}
}

// waitHeap orders waiters: higher priority, lower counter, earlier arrival.
type waitHeap []*waiter

func (h waitHeap) Len() int { return len(h) }
func (h waitHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if a.counter != b.counter {
		return a.counter < b.counter
	}
	return a.seq < b.seq
}
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waitHeap) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waitHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return w
}
