// Package coldstart holds requests for a ModelServer that has no ready pod
// (a model scaled to zero, or all of its pods restarting) until a pod is
// ready, and meanwhile asks for capacity, so that the autoscaler scales up
// at once rather than at its next period. Held requests are bounded per
// ModelServer and each waits at most a deadline; they are released in
// arrival order when the ModelServer becomes servable.
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
	// Wake asks whatever scales the ModelServer's workloads to bring up
	// pods now. It returns ErrNoWorkload when there is nothing to scale.
	Wake(ctx context.Context, server *networkingv1alpha1.ModelServer) error
}

// Limits bound holding; they may change while requests are held.
type Limits struct {
	// MaxHeld is the most requests held per ModelServer; 0 disables
	// holding.
	MaxHeld int
	// Timeout is how long one request is held at most.
	Timeout time.Duration
	// WakeInterval is how often a wake is sent again while requests are
	// held: a request that arrives as the target is being scaled down to
	// zero is older than that scale, so the autoscaler ignores it, and the
	// next one wakes the target.
	WakeInterval time.Duration
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
	// held counts queues, so that Notify costs nothing when none is held.
	held atomic.Int32
}

type queue struct {
	key      string
	server   *networkingv1alpha1.ModelServer
	servable func() bool
	waiters  []*waiter // arrival order
	since    time.Time
	stop     chan struct{}
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

// Hold returns once servable reports true, or with ErrOverflow,
// ErrTimeout, ErrNotServable or the context's error. key names the
// ModelServer (namespace/name); servable is checked again on every Notify.
func (h *Holder) Hold(ctx context.Context, server *networkingv1alpha1.ModelServer, key string, servable func() bool) (time.Duration, error) {
	if servable() {
		return 0, nil
	}
	l := h.limits.Load()
	start := time.Now()
	h.mu.Lock()
	q := h.queues[key]
	first := q == nil
	if first {
		q = &queue{key: key, servable: servable, since: start, stop: make(chan struct{})}
		h.queues[key] = q
		h.held.Add(1)
	}
	q.server = server
	if len(q.waiters) >= l.MaxHeld {
		h.mu.Unlock()
		h.count(key, "overflow")
		return 0, fmt.Errorf("%w (%d)", ErrOverflow, l.MaxHeld)
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
		if errors.Is(h.wake(q), ErrNoWorkload) {
			h.releaseAll(q, ErrNotServable)
		} else {
			go h.loop(q)
		}
	}
	// A pod may have become ready between the first check and the enqueue.
	h.Notify()

	timer := time.NewTimer(l.Timeout)
	defer timer.Stop()
	select {
	case <-w.release:
	case <-timer.C:
		if h.leave(q, w, "timeout") {
			return time.Since(start), fmt.Errorf("%w (%s)", ErrTimeout, l.Timeout)
		}
	case <-ctx.Done():
		if h.leave(q, w, "cancelled") {
			return time.Since(start), ctx.Err()
		}
	}
	<-w.release
	return time.Since(start), w.err
}

// Notify checks every held ModelServer and releases those now servable.
// The datastore calls it after every endpoint change.
func (h *Holder) Notify() {
	if h == nil || h.held.Load() == 0 {
		return
	}
	h.mu.Lock()
	var ready []*queue
	for _, q := range h.queues {
		if q.servable() {
			ready = append(ready, q)
		}
	}
	h.mu.Unlock()
	for _, q := range ready {
		h.releaseAll(q, nil)
	}
}

// releaseAll ends q: its waiters return err (nil: served), oldest first.
func (h *Holder) releaseAll(q *queue, err error) {
	h.mu.Lock()
	if h.queues[q.key] != q {
		h.mu.Unlock()
		return
	}
	delete(h.queues, q.key)
	h.held.Add(-1)
	close(q.stop)
	ws := q.waiters
	q.waiters = nil
	for _, w := range ws {
		w.done = true
	}
	h.mu.Unlock()
	now := time.Now()
	outcome := "released"
	if err != nil {
		outcome = "not_servable"
	} else {
		h.log.Info("released held requests", "modelServer", q.key, "requests", len(ws), "coldStart", now.Sub(q.since).String())
		if m := h.metrics; m != nil {
			m.ColdStartDuration.WithLabelValues(q.key).Observe(now.Sub(q.since).Seconds())
		}
	}
	for _, w := range ws {
		w.err = err
		close(w.release)
		h.count(q.key, outcome)
		h.gauge(q.key, -1)
		if err == nil && h.metrics != nil {
			h.metrics.HoldDuration.WithLabelValues(q.key).Observe(now.Sub(w.at).Seconds())
		}
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
	if len(q.waiters) == 0 && h.queues[q.key] == q {
		delete(h.queues, q.key)
		h.held.Add(-1)
		close(q.stop)
	}
	h.mu.Unlock()
	close(w.release)
	h.count(q.key, outcome)
	h.gauge(q.key, -1)
	return true
}

// loop wakes q's workloads again every WakeInterval while requests are
// held, and checks servability in case an endpoint change was missed.
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
		h.Notify()
		if errors.Is(h.wake(q), ErrNoWorkload) {
			h.releaseAll(q, ErrNotServable)
			return
		}
	}
}

func (h *Holder) wake(q *queue) error {
	h.mu.Lock()
	server := q.server
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	err := h.waker.Wake(ctx, server)
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
