// Package coldstart holds requests for a ModelServer that has no ready pod
// (a model scaled to zero, or all of its pods restarting) until a pod is
// ready, and meanwhile asks for capacity, so that the autoscaler scales up
// at once rather than at its next period. Held requests are bounded per
// ModelServer and each waits at most a deadline for a ready pod. They are
// released oldest first, paced to what the ready pods take at once, so that
// a backlog neither floods the first pod nor reaches it out of order; while
// some are still held, requests that arrive queue behind them.
package coldstart

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/metrics"
)

// ErrNoWorkload is what a Waker returns when nothing it knows of can bring
// pods to the ModelServer (no ModelServing is selected by it).
var ErrNoWorkload = errors.New("no workload to scale up")

// Outcomes of Hold other than a release.
var (
	// ErrOverflow: the ModelServer already holds Limits.MaxHeld requests.
	ErrOverflow = errors.New("too many requests already held")
	// ErrTimeout: no pod was ready within Limits.Timeout.
	ErrTimeout = errors.New("no ready pod within the hold timeout")
	// ErrNotServable: the Waker said nothing can bring pods.
	ErrNotServable = errors.New("nothing can scale the ModelServer up")
)

// Waker asks for capacity behind a ModelServer.
type Waker interface {
	// Wake asks whatever scales the ModelServer's workloads for capacity
	// for demand requests now: those held, plus those released and not
	// finished while some are still held. It returns ErrNoWorkload when
	// there is nothing to scale.
	Wake(ctx context.Context, server *networkingv1alpha1.ModelServer, demand int) error
}

// Capacity reports how many requests a ModelServer's ready pods take at
// once; 0 while it has none (or cannot be served). The Holder asks it on
// every Notify, on every tick of its wake loop and whenever a released
// request finishes, and releases held requests while fewer than that many
// of those it released are unfinished.
type Capacity func() int

// Limits bound holding; they may change while requests are held.
type Limits struct {
	// MaxHeld is the most requests held per ModelServer; 0 disables
	// holding.
	MaxHeld int
	// Timeout is how long one request is held at most while the
	// ModelServer has no ready pod. A request still held for capacity
	// once pods are ready does not time out: without the holder it would
	// wait in an engine's queue instead.
	Timeout time.Duration
	// WakeInterval is how often a wake is sent again while requests are
	// held: a request that arrives as the target is being scaled down to
	// zero is older than that scale, so the autoscaler ignores it, and the
	// next one wakes the target. It also carries the demand as it grows.
	WakeInterval time.Duration
	// ReleasePerPod is how many held requests a ready pod is first given
	// (the caller's Capacity counts with it; see ReleasePerPod); 0 releases
	// every held request at once.
	ReleasePerPod int
}

// Holder holds requests. It is safe for concurrent use.
type Holder struct {
	ctx     context.Context
	waker   Waker
	metrics *metrics.Metrics
	log     logr.Logger
	limits  atomic.Pointer[Limits]

	mu     sync.Mutex
	queues map[string]*queue
	// held counts queues, so that Notify and Holds cost nothing when none
	// is held.
	held atomic.Int32
}

type queue struct {
	key      string
	server   *networkingv1alpha1.ModelServer
	capacity Capacity
	waiters  []*waiter // arrival order
	// running counts requests released from this queue and not finished.
	running int
	since   time.Time
	// released is set at the first release (the end of the cold start).
	released bool
	// noWorkload is set when the Waker said nothing can scale the
	// ModelServer while it could serve: waking stops, pacing goes on.
	noWorkload bool
	stop       chan struct{}
}

type waiter struct {
	release chan struct{}
	err     error
	at      time.Time
	done    bool
}

// New returns a Holder whose wake loops stop with ctx. waker must not be
// nil; m may be.
func New(ctx context.Context, waker Waker, m *metrics.Metrics, log logr.Logger, l Limits) *Holder {
	h := &Holder{ctx: ctx, waker: waker, metrics: m, log: log, queues: map[string]*queue{}}
	h.SetLimits(l)
	return h
}

// SetLimits replaces the limits; held requests keep their deadlines.
func (h *Holder) SetLimits(l Limits) {
	if l.WakeInterval <= 0 {
		l.WakeInterval = time.Second
	}
	h.limits.Store(&l)
}

// Enabled reports whether requests are held at all.
func (h *Holder) Enabled() bool { return h != nil && h.limits.Load().MaxHeld > 0 }

// ReleasePerPod is Limits.ReleasePerPod, for the Capacity of callers.
func (h *Holder) ReleasePerPod() int { return h.limits.Load().ReleasePerPod }

// Holds reports whether requests are held for key: a new request for it
// must then queue behind them (Hold) even if the ModelServer has ready
// pods, or it would overtake them.
func (h *Holder) Holds(key string) bool {
	if h == nil || h.held.Load() == 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.queues[key] != nil
}

func nothing() {}

// Hold returns once the request may go to the ModelServer, or with
// ErrOverflow, ErrTimeout, ErrNotServable or the context's error. key
// names the ModelServer (namespace/name). On success the caller must call
// done once the request has finished, whatever its outcome: what the
// holder releases next depends on it. A request for a ModelServer with
// capacity and nothing held returns at once.
func (h *Holder) Hold(ctx context.Context, server *networkingv1alpha1.ModelServer, key string, capacity Capacity) (done func(), held time.Duration, err error) {
	if !h.Holds(key) && capacity() > 0 {
		return nothing, 0, nil
	}
	l := h.limits.Load()
	start := time.Now()
	h.mu.Lock()
	q := h.queues[key]
	if q == nil && capacity() > 0 {
		// The queue drained since Holds: nothing to wait behind.
		h.mu.Unlock()
		return nothing, 0, nil
	}
	first := q == nil
	if first {
		q = &queue{key: key, since: start, stop: make(chan struct{})}
		h.queues[key] = q
		h.held.Add(1)
	}
	q.server, q.capacity = server, capacity
	if len(q.waiters) >= l.MaxHeld {
		h.mu.Unlock()
		h.count(key, "overflow")
		return nothing, 0, fmt.Errorf("%w (%d)", ErrOverflow, l.MaxHeld)
	}
	w := &waiter{release: make(chan struct{}), at: start}
	q.waiters = append(q.waiters, w)
	h.mu.Unlock()
	h.gauge(key, 1)
	if first {
		if m := h.metrics; m != nil {
			m.ColdStarts.WithLabelValues(key).Inc()
		}
		h.log.Info("holding requests: ModelServer has no ready pod", "modelServer", key)
		if errors.Is(h.wake(q), ErrNoWorkload) && capacity() <= 0 {
			h.releaseAll(q, ErrNotServable)
		} else {
			go h.loop(q)
		}
	}
	// A pod may have become ready, or a slot free, since the enqueue.
	h.dispatch(q)

	timer := time.NewTimer(l.Timeout)
	defer timer.Stop()
	for {
		select {
		case <-w.release:
		case <-timer.C:
			// Pods are ready and the request waits for a slot: it
			// would be queued at an engine otherwise, so it waits on.
			if capacity() > 0 {
				timer.Reset(l.Timeout)
				continue
			}
			if h.leave(q, w, "timeout") {
				return nothing, time.Since(start), fmt.Errorf("%w (%s)", ErrTimeout, l.Timeout)
			}
		case <-ctx.Done():
			if h.leave(q, w, "cancelled") {
				return nothing, time.Since(start), ctx.Err()
			}
		}
		break
	}
	<-w.release
	if w.err != nil {
		return nothing, time.Since(start), w.err
	}
	var once sync.Once
	return func() { once.Do(func() { h.finished(q) }) }, time.Since(start), nil
}

// finished counts a released request of q as done and releases the next.
func (h *Holder) finished(q *queue) {
	h.mu.Lock()
	q.running--
	h.mu.Unlock()
	h.dispatch(q)
}

// Notify releases what every held ModelServer can now take. The datastore
// calls it after every endpoint change.
func (h *Holder) Notify() {
	if h == nil || h.held.Load() == 0 {
		return
	}
	h.mu.Lock()
	qs := make([]*queue, 0, len(h.queues))
	for _, q := range h.queues {
		qs = append(qs, q)
	}
	h.mu.Unlock()
	for _, q := range qs {
		h.dispatch(q)
	}
}

// dispatch releases q's oldest waiters while its capacity exceeds what it
// released and has not finished; the queue ends when none is left.
func (h *Holder) dispatch(q *queue) {
	limit := h.capacityOf(q)
	h.mu.Lock()
	if h.queues[q.key] != q {
		h.mu.Unlock()
		return
	}
	n := min(max(limit-q.running, 0), len(q.waiters))
	if n == 0 {
		h.mu.Unlock()
		return
	}
	ws := make([]*waiter, n)
	copy(ws, q.waiters)
	q.waiters = append(q.waiters[:0], q.waiters[n:]...)
	q.running += n
	first := !q.released
	q.released = true
	left := len(q.waiters)
	if left == 0 {
		h.end(q)
	}
	for _, w := range ws {
		w.done = true
	}
	h.mu.Unlock()
	now := time.Now()
	if first {
		h.log.Info("releasing held requests", "modelServer", q.key, "requests", n, "stillHeld", left, "coldStart", now.Sub(q.since).String())
		if m := h.metrics; m != nil {
			m.ColdStartDuration.WithLabelValues(q.key).Observe(now.Sub(q.since).Seconds())
		}
	} else {
		h.log.V(1).Info("releasing held requests", "modelServer", q.key, "requests", n, "stillHeld", left)
	}
	for _, w := range ws { // oldest first
		close(w.release)
		h.count(q.key, "released")
		h.gauge(q.key, -1)
		if h.metrics != nil {
			h.metrics.HoldDuration.WithLabelValues(q.key).Observe(now.Sub(w.at).Seconds())
		}
	}
}

// capacityOf asks q's latest Capacity (each Hold brings its own).
func (h *Holder) capacityOf(q *queue) int {
	h.mu.Lock()
	c := q.capacity
	h.mu.Unlock()
	return c()
}

// end removes q from the held queues; h.mu must be held.
func (h *Holder) end(q *queue) {
	if h.queues[q.key] == q {
		delete(h.queues, q.key)
		h.held.Add(-1)
		close(q.stop)
	}
}

// releaseAll ends q: its waiters return err, oldest first.
func (h *Holder) releaseAll(q *queue, err error) {
	h.mu.Lock()
	if h.queues[q.key] != q {
		h.mu.Unlock()
		return
	}
	h.end(q)
	ws := q.waiters
	q.waiters = nil
	for _, w := range ws {
		w.done = true
	}
	h.mu.Unlock()
	for _, w := range ws {
		w.err = err
		close(w.release)
		h.count(q.key, "not_servable")
		h.gauge(q.key, -1)
	}
}

// leave removes w from q unless it was already released; it reports
// whether it removed it.
func (h *Holder) leave(q *queue, w *waiter, outcome string) bool {
	h.mu.Lock()
	if w.done {
		h.mu.Unlock()
		return false
	}
	w.done = true
	for i, o := range q.waiters {
		if o == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	if len(q.waiters) == 0 {
		h.end(q)
	}
	h.mu.Unlock()
	close(w.release)
	h.count(q.key, outcome)
	h.gauge(q.key, -1)
	return true
}

// loop wakes q's workloads again every WakeInterval while requests are
// held, and releases what the capacity allows in case an endpoint change
// was missed or an engine's scraped state changed its capacity.
func (h *Holder) loop(q *queue) {
	t := time.NewTicker(h.limits.Load().WakeInterval)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-h.ctx.Done():
			h.releaseAll(q, h.ctx.Err())
			return
		case <-t.C:
		}
		h.dispatch(q)
		h.mu.Lock()
		quiet := q.noWorkload
		h.mu.Unlock()
		if quiet || !errors.Is(h.wake(q), ErrNoWorkload) {
			continue
		}
		if h.capacityOf(q) > 0 {
			// Nothing to scale, but pods to pace onto.
			h.mu.Lock()
			q.noWorkload = true
			h.mu.Unlock()
			continue
		}
		h.releaseAll(q, ErrNotServable)
		return
	}
}

func (h *Holder) wake(q *queue) error {
	h.mu.Lock()
	server, demand := q.server, len(q.waiters)+q.running
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	err := h.waker.Wake(ctx, server, demand)
	result := "ok"
	switch {
	case errors.Is(err, ErrNoWorkload):
		result = "no_workload"
		h.log.Info("nothing to scale up for held requests", "modelServer", q.key)
	case err != nil:
		result = "error"
		h.log.Error(err, "asking for capacity failed; still holding", "modelServer", q.key)
	}
	if m := h.metrics; m != nil {
		m.WakeRequests.WithLabelValues(q.key, result).Inc()
	}
	return err
}

func (h *Holder) count(key, outcome string) {
	if m := h.metrics; m != nil {
		m.HeldTotal.WithLabelValues(key, outcome).Inc()
	}
}

func (h *Holder) gauge(key string, d float64) {
	if m := h.metrics; m != nil {
		m.HeldRequests.WithLabelValues(key).Add(d)
	}
}
