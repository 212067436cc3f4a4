package ratelimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/kthena/kthena/internal/router/metrics"
	"github.com/kthena/kthena/internal/router/redispool"
	"github.com/kthena/kthena/internal/testing/realserver"
)

// TestGlobalRedisOutage, on a real redis-server: two replicas share a
// global limit; while Redis is down each enforces the limit alone (neither
// fails requests nor lets them through unlimited) and tries Redis at most
// once a second; once Redis is back (empty) the limit is shared again.
func TestGlobalRedisOutage(t *testing.T) {
	srv := realserver.StartRedis(t)
	ctx := context.Background()
	lim := Limits{Input: 100, Per: time.Hour, Unit: "hour", Redis: srv.Addr}
	newReplica := func() (*Limiter, *metrics.Metrics) {
		pool := redispool.New(redispool.Options{})
		t.Cleanup(func() { _ = pool.Close() })
		m := metrics.New(prometheus.NewRegistry())
		return New(pool, m, logr.Discard()), m
	}
	a, am := newReplica()
	b, _ := newReplica()
	denied := func(err error) bool {
		var d *Denied
		return errors.As(err, &d) && d.Kind == Input
	}
	if err := a.Admit(ctx, "ns/r", "", "m", lim, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.Admit(ctx, "ns/r", "", "m", lim, 60); !denied(err) {
		t.Fatalf("b after a took 60 of the shared 100: %v", err)
	}

	srv.Stop()
	began := time.Now()
	for i := range 2 { // a's own bucket starts full: 100 tokens
		if err := a.Admit(ctx, "ns/r", "", "m", lim, 50); err != nil {
			t.Fatalf("request %d with Redis down: %v", i, err)
		}
	}
	if err := a.Admit(ctx, "ns/r", "", "m", lim, 50); !denied(err) {
		t.Fatalf("third request with Redis down: %v (want the limit enforced locally)", err)
	}
	for range 20 {
		_ = a.Admit(ctx, "ns/r", "", "m", lim, 1)
	}
	if n, took := testutil.ToFloat64(am.RateLimitStoreErrors), time.Since(began); took < storeRetry && n != 1 {
		t.Fatalf("%v Redis failures counted over 23 requests in %s: want one try per %s", n, took, storeRetry)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(storeRetry)
	if err := a.Admit(ctx, "ns/r", "", "m", lim, 70); err != nil {
		t.Fatalf("Redis back and empty, its bucket starts full: %v", err)
	}
	if err := b.Admit(ctx, "ns/r", "", "m", lim, 70); !denied(err) {
		t.Fatalf("b once Redis is back: %v (want the shared limit)", err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	if n, err := c.Exists(ctx, KeyPrefix+"ns/r:input").Result(); err != nil || n != 1 {
		t.Fatalf("bucket key in Redis after the outage: %d %v", n, err)
	}
}
