package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock for MemoryStore.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func newFakeStore(maxEntries int) (*MemoryStore, *fakeClock) {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return newMemoryStore(maxEntries, c.now), c
}

// storeContract is what every Store must do; the memory and Redis tests
// both run it. advance moves the store's clock (or waits).
func storeContract(t *testing.T, s Store, advance func(time.Duration)) {
	ctx := context.Background()
	if _, ok, err := s.Get(ctx, "ns/ms:absent"); ok || err != nil {
		t.Fatalf("Get of an absent key = %v, %v", ok, err)
	}
	if err := s.Set(ctx, "ns/ms:a", "ns/pod-1", time.Second); err != nil {
		t.Fatal(err)
	}
	if pod, ok, err := s.Get(ctx, "ns/ms:a"); pod != "ns/pod-1" || !ok || err != nil {
		t.Fatalf("Get = %q, %v, %v; want ns/pod-1", pod, ok, err)
	}
	// A second Set replaces the pod and restarts the lifetime.
	advance(600 * time.Millisecond)
	if err := s.Set(ctx, "ns/ms:a", "ns/pod-2", time.Second); err != nil {
		t.Fatal(err)
	}
	advance(600 * time.Millisecond)
	if pod, ok, _ := s.Get(ctx, "ns/ms:a"); pod != "ns/pod-2" || !ok {
		t.Fatalf("after a refresh Get = %q, %v; want ns/pod-2", pod, ok)
	}
	advance(600 * time.Millisecond)
	if _, ok, _ := s.Get(ctx, "ns/ms:a"); ok {
		t.Fatal("binding outlived its TTL")
	}
	if err := s.Set(ctx, "ns/ms:b", "ns/pod-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "ns/ms:b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "ns/ms:b"); ok {
		t.Fatal("binding survived Delete")
	}
	if err := s.Delete(ctx, "ns/ms:b"); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
	if err := s.Set(ctx, "ns/ms:c", "ns/pod-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "ns/ms:c", "ns/pod-1", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "ns/ms:c"); ok {
		t.Fatal("Set with ttl 0 kept the binding")
	}
}

func TestMemoryStoreContract(t *testing.T) {
	s, c := newFakeStore(0)
	storeContract(t, s, c.advance)
}

func TestMemoryStoreBound(t *testing.T) {
	ctx := context.Background()
	for _, limit := range []int{1, 5, 3000, 40000} {
		s, c := newFakeStore(limit)
		for i := range 3 * limit {
			c.advance(time.Millisecond)
			if err := s.Set(ctx, fmt.Sprint("k", i), "pod", time.Hour); err != nil {
				t.Fatal(err)
			}
			if n := s.Len(); n > limit {
				t.Fatalf("limit %d: %d entries after %d sets", limit, n, i+1)
			}
		}
		// The newest entry always survives its own insertion.
		if _, ok, _ := s.Get(ctx, fmt.Sprint("k", 3*limit-1)); !ok {
			t.Fatalf("limit %d: the newest entry was evicted", limit)
		}
	}
}

func TestMemoryStoreEvictsExpiredFirst(t *testing.T) {
	ctx := context.Background()
	s, c := newFakeStore(4)
	_ = s.Set(ctx, "old", "pod", time.Second)
	for _, k := range []string{"a", "b", "c"} {
		_ = s.Set(ctx, k, "pod", time.Hour)
	}
	c.advance(2 * time.Second)
	_ = s.Set(ctx, "d", "pod", time.Hour)
	for _, k := range []string{"a", "b", "c", "d"} {
		if _, ok, _ := s.Get(ctx, k); !ok {
			t.Fatalf("live entry %s evicted while an expired one was held", k)
		}
	}
}

func TestMemoryStoreEvictsSoonestExpiry(t *testing.T) {
	ctx := context.Background()
	s, _ := newFakeStore(3) // one shard smaller than the sample: the choice is exact
	_ = s.Set(ctx, "a", "pod", 3*time.Hour)
	_ = s.Set(ctx, "b", "pod", time.Hour)
	_ = s.Set(ctx, "c", "pod", 2*time.Hour)
	_ = s.Set(ctx, "d", "pod", time.Hour)
	if _, ok, _ := s.Get(ctx, "b"); ok {
		t.Fatal("the entry expiring first was kept")
	}
	for _, k := range []string{"a", "c", "d"} {
		if _, ok, _ := s.Get(ctx, k); !ok {
			t.Fatalf("%s evicted instead of b", k)
		}
	}
}

func TestMemoryStoreConcurrent(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(2048)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprint("k", (w*2000+i)%3000)
				_ = s.Set(ctx, k, fmt.Sprint("pod-", w), time.Minute)
				if _, _, err := s.Get(ctx, k); err != nil {
					t.Error(err)
				}
				if i%7 == 0 {
					_ = s.Delete(ctx, k)
				}
			}
		})
	}
	wg.Wait()
	if n := s.Len(); n > 2048 {
		t.Fatalf("%d entries, above the bound", n)
	}
}

func BenchmarkMemoryStoreGetSet(b *testing.B) {
	ctx := context.Background()
	s := NewMemoryStore(0)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("default/ms:", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := keys[i%len(keys)]
			_, _, _ = s.Get(ctx, k)
			_ = s.Set(ctx, k, "default/pod-1", time.Hour)
			i++
		}
	})
}
