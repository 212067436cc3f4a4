package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

func u32(v uint32) *uint32 { return &v }

func TestLimitsOf(t *testing.T) {
	l := LimitsOf(&networkingv1alpha1.RateLimit{InputTokensPerUnit: u32(10), Unit: networkingv1alpha1.Month,
		Global: &networkingv1alpha1.GlobalRateLimit{Redis: &networkingv1alpha1.RedisConfig{Address: "r:6379"}}})
	if l.Input != 10 || l.Output != 0 || l.Per != 30*24*time.Hour || l.Redis != "r:6379" || l.Unit != "month" {
		t.Fatalf("%+v", l)
	}
	if !LimitsOf(nil).Empty() {
		t.Fatal("nil limits limit something")
	}
}

// Input: all or nothing, with the wait until the tokens are there; a
// request larger than the bucket can never pass.
func TestLocalInput(t *testing.T) {
	l := New(nil, nil, logr.Discard())
	lim := Limits{Input: 100, Per: time.Minute, Unit: "minute"}
	ctx := context.Background()
	for i := range 2 {
		if err := l.Admit(ctx, "ns/r", "", "m", lim, 50); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	err := l.Admit(ctx, "ns/r", "", "m", lim, 10)
	var d *Denied
	if !errors.As(err, &d) || d.Kind != Input || d.RetryAfter < 5*time.Second || d.RetryAfter > 7*time.Second {
		t.Fatalf("third request: %v (want a wait of about 6 s for 10 tokens at 100/min)", err)
	}
	if err := l.Admit(ctx, "ns/other", "", "m", lim, 50); err != nil {
		t.Fatalf("another route has its own bucket: %v", err)
	}
	if err := l.Admit(ctx, "ns/big", "", "m", lim, 101); !errors.As(err, &d) || !d.Never {
		t.Fatalf("oversized request: %v", err)
	}
	// A changed limit is a new bucket.
	if err := l.Admit(ctx, "ns/r", "", "m", Limits{Input: 200, Per: time.Minute, Unit: "minute"}, 150); err != nil {
		t.Fatalf("raised limit: %v", err)
	}
}

// Output: a request needs one token left; the answer's tokens are taken
// after it, into debt, which delays the next requests.
func TestLocalOutputDebt(t *testing.T) {
	l := New(nil, nil, logr.Discard())
	lim := Limits{Output: 60, Per: time.Minute, Unit: "minute"}
	ctx := context.Background()
	if err := l.Admit(ctx, "r", "", "m", lim, 0); err != nil {
		t.Fatal(err)
	}
	l.Consume(ctx, "r", "", lim, 150) // 90 over the bucket: 1.5 minutes of debt
	err := l.Admit(ctx, "r", "", "m", lim, 0)
	var d *Denied
	if !errors.As(err, &d) || d.Kind != Output || d.RetryAfter < 85*time.Second || d.RetryAfter > 95*time.Second {
		t.Fatalf("after the debt: %v", err)
	}
}
