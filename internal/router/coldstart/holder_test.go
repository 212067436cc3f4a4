package coldstart

import (
	"context"
	"errors"
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
	calls atomic.Int32
	err   atomic.Pointer[error]
}

func (f *fakeWaker) Wake(context.Context, *networkingv1alpha1.ModelServer) error {
	f.calls.Add(1)
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

// Requests held while nothing is ready are released together when the
// ModelServer becomes servable; the wake is sent at once
// and again while they wait.
func TestHoldReleasesWhenServable(t *testing.T) {
	w := &fakeWaker{}
	h, m := newHolder(t, w, Limits{MaxHeld: 10, Timeout: 10 * time.Second, WakeInterval: 20 * time.Millisecond})
	var ready atomic.Bool
	servable := ready.Load

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hold(context.Background(), server, "ns/s", servable); err != nil {
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
	if d, err := h.Hold(context.Background(), server, "ns/s", servable); err != nil || d != 0 {
		t.Fatalf("servable: held %v, %v", d, err)
	}
}

// Release is in arrival order: the channels are closed oldest first.
func TestReleaseOrder(t *testing.T) {
	h, _ := newHolder(t, &fakeWaker{}, Limits{MaxHeld: 10, Timeout: time.Minute, WakeInterval: time.Hour})
	var ready atomic.Bool
	for range 3 {
		go func() { _, _ = h.Hold(context.Background(), server, "k", ready.Load) }()
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
	never := func() bool { return false }
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := h.Hold(context.Background(), server, "k", never); errs <- err }()
	}
	waitFor(t, func() bool { return testutil.ToFloat64(m.HeldRequests.WithLabelValues("k")) == 2 })
	if _, err := h.Hold(context.Background(), server, "k", never); !errors.Is(err, ErrOverflow) {
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
	if _, err := h.Hold(ctx, server, "k", never); !errors.Is(err, context.Canceled) {
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
	if _, err := h.Hold(context.Background(), server, "k", func() bool { return false }); !errors.Is(err, ErrNotServable) {
		t.Fatalf("%v, want not servable", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("not servable took the timeout")
	}

	w.err.Store(nil)
	done := make(chan error, 1)
	go func() { _, err := h.Hold(context.Background(), server, "k", func() bool { return false }); done <- err }()
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
	go func() { _, err := h.Hold(context.Background(), server, "k", ready.Load); done <- err }()
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
