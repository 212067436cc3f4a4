package session

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kthena/kthena/internal/router/redispool"
	"github.com/kthena/kthena/internal/testing/realserver"
)

func TestRedisStore(t *testing.T) {
	addr := realserver.Redis(t)
	pool := redispool.New(redispool.Options{})
	t.Cleanup(func() { _ = pool.Close() })
	c := pool.Client(addr)
	s := NewRedisStore(c)
	if again := pool.Client(addr); again != c {
		t.Fatal("two clients for one address")
	}
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("contract", func(t *testing.T) {
		storeContract(t, s, time.Sleep) // real TTLs: the contract waits 1.8s in all
	})
	t.Run("key and TTL in Redis", func(t *testing.T) {
		a := NewAffinity(s)
		sess := Session{Server: "ns/ms", Key: "user-1", TTL: 90 * time.Second}
		if err := a.Record(ctx, sess, "ns/pod-a"); err != nil {
			t.Fatal(err)
		}
		raw := redis.NewClient(&redis.Options{Addr: addr})
		defer func() { _ = raw.Close() }()
		key := KeyPrefix + sess.storeKey()
		if got, err := raw.Get(ctx, key).Result(); err != nil || got != "ns/pod-a" {
			t.Fatalf("GET %s = %q, %v", key, got, err)
		}
		if ttl, err := raw.PTTL(ctx, key).Result(); err != nil || ttl <= 89*time.Second || ttl > 90*time.Second {
			t.Fatalf("PTTL %s = %v, %v; want just under 90s", key, ttl, err)
		}
		// Another replica (another client) sees the binding.
		otherClient := redis.NewClient(&redis.Options{Addr: addr})
		defer func() { _ = otherClient.Close() }()
		other := NewAffinity(NewRedisStore(otherClient))
		if d, err := other.Pick(ctx, sess, endpoints("ns/pod-b", "ns/pod-a"), nil); err != nil || d.Outcome != Bound || d.Pod != "ns/pod-a" {
			t.Fatalf("other replica: %+v, %v", d, err)
		}
	})
}

func TestRedisStoreUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	pool := redispool.New(redispool.Options{DialTimeout: 100 * time.Millisecond, Timeout: 100 * time.Millisecond})
	defer func() { _ = pool.Close() }()
	a := NewAffinity(NewRedisStore(pool.Client(addr)))
	start := time.Now()
	d, err := a.Pick(context.Background(), Session{Server: "ns/ms", Key: "k"}, endpoints("ns/p"), nil)
	if err == nil || d.Outcome != Unbound {
		t.Fatalf("unreachable Redis: %+v, %v; want unbound and an error", d, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("a lookup against an unreachable Redis took %v", el)
	}
}
