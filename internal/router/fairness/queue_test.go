package fairness

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func settings() Settings {
	return Settings{MaxQueued: 100, MaxQueuedPerTenant: 50, Timeout: 10 * time.Second, InputWeight: 1, OutputWeight: 2}
}

func one() int { return 1 }

// admitAsync queues a request and reports its tenant on order when admitted.
func admitAsync(t *testing.T, q *Queues, tenant string, prio, tokens int, order chan<- string, tickets chan<- *Ticket) {
	go func() {
		tk, _, err := q.Admit(context.Background(), "s", tenant, prio, tokens, one)
		if err != nil {
			t.Errorf("%s: %v", tenant, err)
			return
		}
		order <- tenant
		tickets <- tk
	}()
}

func waitQueued(t *testing.T, q *Queues, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		q.mu.Lock()
		got := 0
		if qu := q.queues["s"]; qu != nil {
			got = len(qu.waiting)
		}
		q.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A tenant that sent much waits behind one that sent little: the order is
// by served tokens, not by arrival.
func TestVirtualCounterOrder(t *testing.T) {
	q := New(settings(), nil)
	first, _, err := q.Admit(context.Background(), "s", "heavy", 0, 1000, one)
	if err != nil {
		t.Fatal(err)
	}
	order, tickets := make(chan string, 10), make(chan *Ticket, 10)
	for range 3 {
		admitAsync(t, q, "heavy", 0, 1000, order, tickets)
		waitQueued(t, q, len(q.queues["s"].waiting)+1)
	}
	admitAsync(t, q, "light", 0, 10, order, tickets)
	waitQueued(t, q, 4)
	first.Release(100)
	if got := <-order; got != "light" {
		t.Fatalf("first admitted after the release: %s, want light (it was served nothing)", got)
	}
	(<-tickets).Release(1)
	for range 3 {
		if got := <-order; got != "heavy" {
			t.Fatalf("then %s", got)
		}
		(<-tickets).Release(1)
	}
}

// Priority goes first; a tenant back from idling starts at the smallest
// active counter, so it does not overtake those already waiting.
func TestPriorityAndIdleReturn(t *testing.T) {
	q := New(settings(), nil)
	hold, _, _ := q.Admit(context.Background(), "s", "a", 0, 500, one)
	order, tickets := make(chan string, 10), make(chan *Ticket, 10)
	admitAsync(t, q, "b", 0, 500, order, tickets)
	waitQueued(t, q, 1)
	admitAsync(t, q, "vip", 5, 500, order, tickets)
	waitQueued(t, q, 2)
	hold.Release(0)
	if got := <-order; got != "vip" {
		t.Fatalf("first: %s, want the higher priority", got)
	}
	q.mu.Lock()
	lowest := q.queues["s"].counters["b"]
	q.mu.Unlock()
	// "idle" never sent anything: it arrives at the smallest active
	// counter, not at 0.
	admitAsync(t, q, "idle", 0, 1, order, tickets)
	waitQueued(t, q, 2)
	q.mu.Lock()
	got := q.queues["s"].counters["idle"]
	q.mu.Unlock()
	if got < lowest {
		t.Fatalf("a returning tenant starts at %v, below the smallest active counter %v", got, lowest)
	}
	(<-tickets).Release(0)
	if got := <-order; got != "b" {
		t.Fatalf("second: %s, want b (it waited first at the same counter)", got)
	}
	(<-tickets).Release(0)
	if got := <-order; got != "idle" {
		t.Fatalf("third: %s", got)
	}
	(<-tickets).Release(0)
}

// Weighted shares: with weight 2 a tenant is served twice the tokens.
func TestWeights(t *testing.T) {
	s := settings()
	s.TenantWeights = map[string]float64{"big": 2}
	q := New(s, nil)
	hold, _, _ := q.Admit(context.Background(), "s", "x", 0, 0, one)
	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	for _, tenant := range []string{"big", "small"} {
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk, _, err := q.Admit(context.Background(), "s", tenant, 0, 100, one)
				if err != nil {
					return
				}
				mu.Lock()
				served[tenant]++
				total := served["big"] + served["small"]
				mu.Unlock()
				if total <= 30 {
					tk.Release(0)
				}
			}()
		}
	}
	waitQueued(t, q, 60)
	hold.Release(0)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		total := served["big"] + served["small"]
		mu.Unlock()
		if total >= 31 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	big, small := served["big"], served["small"]
	mu.Unlock()
	if big < 18 || big > 23 {
		t.Fatalf("of the first 31 admissions big got %d, small %d; want about 2:1", big, small)
	}
	q.mu.Lock()
	for _, w := range q.queues["s"].waiting {
		close(w.ready) // let the rest go; the test is over
		w.done = true
	}
	q.queues["s"].waiting = nil
	q.mu.Unlock()
}

func TestBounds(t *testing.T) {
	s := settings()
	s.MaxQueued, s.MaxQueuedPerTenant, s.Timeout = 3, 2, 200*time.Millisecond
	q := New(s, nil)
	hold, _, _ := q.Admit(context.Background(), "s", "a", 0, 0, one)
	errs := make(chan error, 3)
	for _, tenant := range []string{"a", "a", "b"} {
		go func() { _, _, err := q.Admit(context.Background(), "s", tenant, 0, 0, one); errs <- err }()
		waitQueued(t, q, len(q.queues["s"].waiting)+1)
	}
	if _, _, err := q.Admit(context.Background(), "s", "c", 0, 0, one); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fourth: %v", err)
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrTimeout) {
			t.Fatalf("waiting request: %v", err)
		}
	}
	// Per tenant.
	s.MaxQueued = 10
	q.SetSettings(s)
	for range 2 {
		go func() { _, _, err := q.Admit(context.Background(), "s", "a", 0, 0, one); errs <- err }()
	}
	waitQueued(t, q, 2)
	if _, _, err := q.Admit(context.Background(), "s", "a", 0, 0, one); !errors.Is(err, ErrTenantFull) {
		t.Fatalf("third of a tenant: %v", err)
	}
	<-errs
	<-errs
	// A client that goes away leaves the queue at once.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, _, err := q.Admit(ctx, "s", "d", 0, 0, one); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	waitQueued(t, q, 0)
	hold.Release(0)
	// Free capacity and an empty queue: admitted at once.
	if tk, waited, err := q.Admit(context.Background(), "s", "e", 0, 0, one); err != nil || waited != 0 {
		t.Fatalf("free: %v after %s", err, waited)
	} else {
		tk.Release(0)
	}
}
