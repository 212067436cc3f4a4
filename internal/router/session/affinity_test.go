package session

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/framework"
)

func endpoints(keys ...string) []*framework.Endpoint {
	eps := make([]*framework.Endpoint, len(keys))
	for i, k := range keys {
		eps[i] = &framework.Endpoint{Key: k, Metrics: &framework.Metrics{}}
	}
	return eps
}

func TestTTL(t *testing.T) {
	if got := TTL(nil); got != 3*time.Hour {
		t.Fatalf("TTL(nil) = %v, want 3h", got)
	}
	if got := TTL(&networkingv1alpha1.SessionSticky{SessionAffinitySeconds: ptr.To[int32](30)}); got != 30*time.Second {
		t.Fatalf("TTL(30) = %v", got)
	}
	if got := TTL(&networkingv1alpha1.SessionSticky{SessionAffinitySeconds: ptr.To[int32](0)}); got != 3*time.Hour {
		t.Fatalf("TTL(0) = %v, want the default", got)
	}
}

func TestNewSession(t *testing.T) {
	spec := &networkingv1alpha1.SessionSticky{SessionAffinitySeconds: ptr.To[int32](60), Sources: sources("Header", "X-Session-ID").Sources}
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	if _, ok := NewSession("ns/ms", spec, r); ok {
		t.Fatal("session without a key")
	}
	r.Header.Set("X-Session-ID", "abc")
	s, ok := NewSession("ns/ms", spec, r)
	if !ok || s != (Session{Server: "ns/ms", Key: "abc", TTL: time.Minute}) {
		t.Fatalf("NewSession = %+v, %v", s, ok)
	}
	if k := s.storeKey(); !strings.HasPrefix(k, "ns/ms:") || strings.Contains(k, "abc") {
		t.Fatalf("store key %q: want scoped to the ModelServer, without the raw key", k)
	}
	other := s
	other.Server = "ns/other"
	if other.storeKey() == s.storeKey() {
		t.Fatal("two ModelServers share a binding")
	}
}

func TestAffinity(t *testing.T) {
	ctx := context.Background()
	store, clock := newFakeStore(0)
	a := NewAffinity(store)
	s := Session{Server: "ns/ms", Key: "user-1", TTL: time.Minute}
	eps := endpoints("ns/pod-a", "ns/pod-b", "ns/pod-c")

	d, err := a.Pick(ctx, s, eps, nil)
	if err != nil || d.Outcome != Unbound || !d.Rebind() || d.Endpoint != nil {
		t.Fatalf("first request: %+v, %v; want unbound", d, err)
	}
	if err := a.Record(ctx, s, "ns/pod-b"); err != nil {
		t.Fatal(err)
	}
	d, _ = a.Pick(ctx, s, eps, nil)
	if d.Outcome != Bound || d.Rebind() || d.Endpoint != eps[1] || d.Pod != "ns/pod-b" {
		t.Fatalf("second request: %+v; want bound to pod-b", d)
	}
	// Another session, or the same key on another ModelServer, is unbound.
	if d, _ := a.Pick(ctx, Session{Server: "ns/ms", Key: "user-2", TTL: time.Minute}, eps, nil); d.Outcome != Unbound {
		t.Fatalf("other key: %v", d.Outcome)
	}
	if d, _ := a.Pick(ctx, Session{Server: "ns/other", Key: "user-1", TTL: time.Minute}, eps, nil); d.Outcome != Unbound {
		t.Fatalf("other ModelServer: %v", d.Outcome)
	}
	// Saturated: the predicate sees the bound endpoint.
	busy := func(ep *framework.Endpoint) bool { return ep.Key == "ns/pod-b" }
	if d, _ := a.Pick(ctx, s, eps, busy); d.Outcome != Saturated || !d.Rebind() || d.Pod != "ns/pod-b" || d.Endpoint != nil {
		t.Fatalf("saturated: %+v", d)
	}
	// Lost: pod-b is no longer a candidate; the caller rebinds to pod-c.
	if d, _ := a.Pick(ctx, s, endpoints("ns/pod-a", "ns/pod-c"), nil); d.Outcome != Lost || d.Pod != "ns/pod-b" {
		t.Fatalf("lost: %+v", d)
	}
	_ = a.Record(ctx, s, "ns/pod-c")
	if d, _ := a.Pick(ctx, s, eps, nil); d.Endpoint != eps[2] {
		t.Fatalf("after rebinding: %+v; want pod-c", d)
	}
	// Each Record restarts the lifetime; without one the binding expires.
	clock.advance(50 * time.Second)
	_ = a.Record(ctx, s, "ns/pod-c")
	clock.advance(50 * time.Second)
	if d, _ := a.Pick(ctx, s, eps, nil); d.Outcome != Bound {
		t.Fatalf("refreshed binding: %v", d.Outcome)
	}
	clock.advance(61 * time.Second)
	if d, _ := a.Pick(ctx, s, eps, nil); d.Outcome != Unbound {
		t.Fatalf("expired binding: %v", d.Outcome)
	}
	// Forget drops the binding.
	_ = a.Record(ctx, s, "ns/pod-a")
	_ = a.Forget(ctx, s)
	if d, _ := a.Pick(ctx, s, eps, nil); d.Outcome != Unbound {
		t.Fatalf("forgotten binding: %v", d.Outcome)
	}
	// A session without a TTL gets the default one, not none.
	_ = a.Record(ctx, Session{Server: "ns/ms", Key: "k"}, "ns/pod-a")
	clock.advance(2 * time.Hour)
	if d, _ := a.Pick(ctx, Session{Server: "ns/ms", Key: "k"}, eps, nil); d.Outcome != Bound {
		t.Fatalf("default TTL: %v", d.Outcome)
	}
}

func TestNilAffinity(t *testing.T) {
	var a *Affinity
	ctx := context.Background()
	s := Session{Server: "ns/ms", Key: "k"}
	if d, err := a.Pick(ctx, s, endpoints("ns/p"), nil); err != nil || d.Outcome != Unbound {
		t.Fatalf("nil Pick: %+v, %v", d, err)
	}
	if a.Record(ctx, s, "ns/p") != nil || a.Forget(ctx, s) != nil {
		t.Fatal("nil Affinity returned an error")
	}
}

type failingStore struct{ err error }

func (f failingStore) Get(context.Context, string) (string, bool, error) { return "", false, f.err }
func (f failingStore) Set(context.Context, string, string, time.Duration) error {
	return f.err
}
func (f failingStore) Delete(context.Context, string) error { return f.err }

func TestAffinityStoreError(t *testing.T) {
	boom := errors.New("redis down")
	a := NewAffinity(failingStore{boom})
	d, err := a.Pick(context.Background(), Session{Server: "ns/ms", Key: "k"}, endpoints("ns/p"), nil)
	if !errors.Is(err, boom) || d.Outcome != Unbound || !d.Rebind() {
		t.Fatalf("store error: %+v, %v; want unbound and the error", d, err)
	}
	if err := a.Record(context.Background(), Session{Server: "ns/ms", Key: "k"}, "ns/p"); !errors.Is(err, boom) {
		t.Fatalf("Record error: %v", err)
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Unbound: "unbound", Bound: "bound", Lost: "lost", Saturated: "saturated", Outcome(9): "unknown"} {
		if o.String() != want {
			t.Fatalf("%d: %q", o, o.String())
		}
	}
}
