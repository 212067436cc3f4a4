package coldstart

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/metrics"
)

type fakeWaker struct {
	calls  atomic.Int32
	demand atomic.Int32
	err    atomic.Pointer[error]
}

func (f *fakeWaker) Wake(_ context.Context, _ *networkingv1alpha1.ModelServer, demand int) error {
	f.calls.Add(1)
	f.demand.Store(int32(demand))
	if e := f.err.Load(); e != nil {
		return *e
	}
	return nil
}

func newHolder(t *testing.T, w Waker, l Limits) (*Holder, *metrics.Metrics) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := metrics.New(prometheus.NewRegistry())
	return New(ctx, w, m, logr.Discard(), l), m
}

var server = &networkingv1alpha1.ModelServer{}

// whenReady is the capacity of a ModelServer that takes any number of
// requests once ready is set.
func whenReady(ready *atomic.Bool) Capacity {
	return func() int {
		if ready.Load() {
			return math.MaxInt
		}
		return 0
	}
}

func never() int { return 0 }

// Requests held while nothing is ready are released together when the
// ModelServer becomes servable; the wake is sent at once
// and again while they wait.
func TestHoldReleasesWhenServable(t *testing.T) {
	w := &fakeWaker{}
	h, m := newHolder(t, w, Limits{MaxHeld: 10, Timeout: 10 * time.Second, WakeInterval: 20 * time.Millisecond})
	var ready atomic.Bool
	servable := whenReady(&ready)

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := h.Hold(context.Background(), server, "ns/s", servable); err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
		}()
		waitFor(t, func() bool { return testutil.ToFloat64(m.HeldRequests.WithLabelValues("ns/s")) == float64(i+1) })
	}
	waitFor(t, func() bool { return w.calls.Load() >= 3 }) // the first wake and at least two repeats
	ready.Store(true)
	h.Notify()
	wg.Wait()
	if len(order) != 5 {
		t.Fatalf("released %v", order)
	}
	if got := testutil.ToFloat64(m.HeldTotal.WithLabelValues("ns/s", "released")); got != 5 {
		t.Fatalf("released counter %v", got)
	}
	if got := testutil.ToFloat64(m.ColdStarts.WithLabelValues("ns/s")); got != 1 {
		t.Fatalf("one cold start, counted %v", got)
	}
	if got := testutil.ToFloat64(m.HeldRequests.WithLabelValues("ns/s")); got != 0 {
		t.Fatalf("held gauge %v after release", got)
	}
	calls := w.calls.Load()
	time.Sleep(100 * time.Millisecond)
	if w.calls.Load() != calls {
		t.Fatal("wakes go on after the release")
	}
	// Servable now: no hold, no wake.
	if _, d, err := h.Hold(context.Background(), server, "ns/s", servable); err != nil || d != 0 {
		t.Fatalf("servable: held %v, %v", d, err)
	}
}

// Release is in arrival order: the channels are closed oldest first.
func TestReleaseOrder(t *testing.T) {
	h, _ := newHolder(t, &fakeWaker{}, Limits{MaxHeld: 10, Timeout: time.Minute, WakeInterval: time.Hour})
	var ready atomic.Bool
	for range 3 {
		go func() { _, _, _ = h.Hold(context.Background(), server, "k", whenReady(&ready)) }()
		n := 0
		waitFor(t, func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			if q := h.queues["k"]; q != nil {
				n = len(q.waiters)
			}
			return n > 0
		})
	}
	waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.queues["k"].waiters) == 3 })
	h.mu.Lock()
	ws := append([]*waiter(nil), h.queues["k"].waiters...)
	h.mu.Unlock()
	for i := 1; i < len(ws); i++ {
		if ws[i].at.Before(ws[i-1].at) {
			t.Fatal("queue not in arrival order")
		}
	}
	ready.Store(true)
	h.Notify()
	for i, w := range ws {
		select {
		case <-w.release:
		case <-time.After(5 * time.Second):
			t.Fatalf("waiter %d not released", i)
		}
	}
}

func TestHoldBounds(t *testing.T) {
	h, m := newHolder(t, &fakeWaker{}, Limits{MaxHeld: 2, Timeout: 300 * time.Millisecond, WakeInterval: time.Hour})
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, _, err := h.Hold(context.Background(), server, "k", never); errs <- err }()
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.HeldRequests.WithLabelValues("k")) == 2 })
	if _, _, err := h.Hold(context.Background(), server, "k", never); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request: %v, want overflow", err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, ErrTimeout) {
			t.Fatalf("held request: %v, want timeout", err)
		}
	}
	if got := testutil.ToFloat64(m.HeldTotal.WithLabelValues("k", "timeout")); got != 2 {
		t.Fatalf("timeouts counted %v", got)
	}
	// A client that goes away leaves the queue.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, _, err := h.Hold(ctx, server, "k", never); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if got := testutil.ToFloat64(m.HeldRequests.WithLabelValues("k")); got != 0 {
		t.Fatalf("held gauge %v", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queues) != 0 {
		t.Fatal("empty queue left behind")
	}
}

// Nothing to wake: the request fails at once instead of waiting out the
// timeout; so do the others held behind it when the workload disappears.
func TestHoldNoWorkload(t *testing.T) {
	w := &fakeWaker{}
	e := ErrNoWorkload
	w.err.Store(&e)
	h, _ := newHolder(t, w, Limits{MaxHeld: 5, Timeout: time.Minute, WakeInterval: 20 * time.Millisecond})
	start := time.Now()
	if _, _, err := h.Hold(context.Background(), server, "k", never); !errors.Is(err, ErrNotServable) {
		t.Fatalf("%v, want not servable", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("not servable took the timeout")
	}

	w.err.Store(nil)
	done := make(chan error, 1)
	go func() { _, _, err := h.Hold(context.Background(), server, "k", never); done <- err }()
	waitFor(t, func() bool { return w.calls.Load() >= 3 })
	w.err.Store(&e)
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotServable) {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held request not failed when its workload went away")
	}
}

// An API error is not a reason to fail: the request stays held and the
// wake is tried again.
func TestHoldWakeErrorKeepsHolding(t *testing.T) {
	w := &fakeWaker{}
	e := errors.New("apiserver unavailable")
	w.err.Store(&e)
	h, m := newHolder(t, w, Limits{MaxHeld: 5, Timeout: time.Minute, WakeInterval: 20 * time.Millisecond})
	var ready atomic.Bool
	done := make(chan error, 1)
	go func() { _, _, err := h.Hold(context.Background(), server, "k", whenReady(&ready)); done <- err }()
	waitFor(t, func() bool { return w.calls.Load() >= 3 })
	ready.Store(true) // no Notify: the wake loop notices
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not released by the loop's check")
	}
	if testutil.ToFloat64(m.WakeRequests.WithLabelValues("k", "error")) < 3 {
		t.Fatal("wake errors not counted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// held is one request held by a test: released is closed once Hold
// returned, with done and err set.
type held struct {
	released chan struct{}
	done     func()
	err      error
}

// holdInOrder starts n requests one after the other, each enqueued before
// the next starts, so that they arrive in order.
func holdInOrder(t *testing.T, h *Holder, m *metrics.Metrics, key string, capacity Capacity, n int) []*held {
	t.Helper()
	out := make([]*held, n)
	for i := range n {
		r := &held{released: make(chan struct{})}
		out[i] = r
		before := testutil.ToFloat64(m.HeldRequests.WithLabelValues(key))
		go func() {
			r.done, _, r.err = h.Hold(context.Background(), server, key, capacity)
			close(r.released)
		}()
		waitFor(t, func() bool { return testutil.ToFloat64(m.HeldRequests.WithLabelValues(key)) == before+1 })
	}
	return out
}

func isReleased(r *held) bool {
	select {
	case <-r.released:
		return true
	default:
		return false
	}
}

// releasedSet waits until want of rs are released, checks that no more
// are, and returns their indices.
func releasedSet(t *testing.T, rs []*held, want int) []int {
	t.Helper()
	count := func() []int {
		var got []int
		for i, r := range rs {
			if isReleased(r) {
				if r.err != nil {
					t.Fatalf("request %d: %v", i, r.err)
				}
				got = append(got, i)
			}
		}
		return got
	}
	waitFor(t, func() bool { return len(count()) >= want })
	time.Sleep(30 * time.Millisecond) // room for a wrong extra release
	got := count()
	if len(got) != want {
		t.Fatalf("released %v, want %d", got, want)
	}
	return got
}

// Held requests are released oldest first, as many as the ready pods take;
// one more each time a released request finishes or capacity grows; a
// request that arrives meanwhile queues behind them even though pods are
// ready; and the queue ends when it is empty, so later requests go straight
// through.
func TestPacedReleaseInArrivalOrder(t *testing.T) {
	w := &fakeWaker{}
	h, m := newHolder(t, w, Limits{MaxHeld: 20, Timeout: time.Minute, WakeInterval: time.Hour})
	var capacity atomic.Int64
	capFn := func() int { return int(capacity.Load()) }
	const key = "ns/s"

	rs := holdInOrder(t, h, m, key, capFn, 6)
	capacity.Store(2) // a pod turns ready with room for 2
	h.Notify()
	if got := releasedSet(t, rs, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("released %v, want the two oldest", got)
	}
	if !h.Holds(key) {
		t.Fatal("queue gone while requests are held")
	}
	// A request that arrives now waits behind the four still held.
	late := holdInOrder(t, h, m, key, capFn, 1)
	rs = append(rs, late...)
	if got := releasedSet(t, rs, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("the late request overtook: released %v", got)
	}

	rs[0].done() // a slot frees: the next oldest goes
	if got := releasedSet(t, rs, 3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("after one finished: released %v", got)
	}

	capacity.Store(4) // a second pod turns ready
	h.Notify()
	if got := releasedSet(t, rs, 5); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("after a second pod: released %v", got)
	}
	capacity.Store(math.MaxInt) // ample: the rest goes at once
	h.Notify()
	if got := releasedSet(t, rs, 7); len(got) != 7 {
		t.Fatalf("released %v", got)
	}
	if h.Holds(key) {
		t.Fatal("queue left after every request was released")
	}
	if got := testutil.ToFloat64(m.HeldTotal.WithLabelValues(key, "released")); got != 7 {
		t.Fatalf("released counter %v", got)
	}
	if got := testutil.CollectAndCount(m.ColdStartDuration); got != 1 {
		t.Fatalf("cold start observed %d times, want once (at the first release)", got)
	}
	// With capacity and nothing held, a request is not held at all.
	if _, d, err := h.Hold(context.Background(), server, key, capFn); err != nil || d != 0 {
		t.Fatalf("ample capacity: held %v, %v", d, err)
	}
}

// Pacing never times a request out: once a pod is ready, a request held
// for a slot waits past the hold timeout and is released when one frees.
// The wake carries the demand: held plus released and unfinished.
func TestPacingOutlastsTimeout(t *testing.T) {
	w := &fakeWaker{}
	h, m := newHolder(t, w, Limits{MaxHeld: 5, Timeout: 50 * time.Millisecond, WakeInterval: 10 * time.Millisecond})
	var capacity atomic.Int64
	capFn := func() int { return int(capacity.Load()) }
	rs := holdInOrder(t, h, m, "k", capFn, 4)
	capacity.Store(1)
	h.Notify()
	if got := releasedSet(t, rs, 1); !slices.Equal(got, []int{0}) {
		t.Fatalf("released %v", got)
	}
	waitFor(t, func() bool { return w.demand.Load() == 4 })
	time.Sleep(150 * time.Millisecond) // three hold timeouts
	if got := testutil.ToFloat64(m.HeldTotal.WithLabelValues("k", "timeout")); got != 0 {
		t.Fatalf("%v requests timed out while waiting for a slot", got)
	}
	rs[0].done()
	if got := releasedSet(t, rs, 2); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("released %v", got)
	}
	rs[1].done()
	rs[1].done() // twice counts once: only request 2 follows
	if got := releasedSet(t, rs, 3); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("released %v", got)
	}
	rs[2].done()
	if got := releasedSet(t, rs, 4); len(got) != 4 {
		t.Fatalf("released %v", got)
	}
}
