package session

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis runs a throwaway redis-server on a free local port and returns
// its address. Without redis-server the test fails under CI (CI set) and is
// skipped elsewhere.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server is not installed; CI must install it (.ci/run does): %v", err)
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); skipping the Redis store tests")
	}
	var lastErr error
	for range 3 { // the free port may be taken before redis-server binds it
		addr, err := tryRedis(t, bin)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return ""
}

func tryRedis(t *testing.T, bin string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", logFile)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.Ping(context.Background()).Err(); err == nil {
			break
		}
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logFile)
			return "", fmt.Errorf("redis-server exited (%v): %s", err, out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return "", fmt.Errorf("redis-server on %s did not answer within 10s", addr)
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return addr, nil
}

func TestRedisStore(t *testing.T) {
	addr := startRedis(t)
	pool := NewRedisPool(RedisOptions{})
	t.Cleanup(func() { _ = pool.Close() })
	s := pool.Store(addr)
	if pool.Store(addr) != s {
		t.Fatal("two stores (two clients) for one address")
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
	pool := NewRedisPool(RedisOptions{DialTimeout: 100 * time.Millisecond, Timeout: 100 * time.Millisecond})
	defer func() { _ = pool.Close() }()
	a := NewAffinity(pool.Store(addr))
	start := time.Now()
	d, err := a.Pick(context.Background(), Session{Server: "ns/ms", Key: "k"}, endpoints("ns/p"), nil)
	if err == nil || d.Outcome != Unbound {
		t.Fatalf("unreachable Redis: %+v, %v; want unbound and an error", d, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("a lookup against an unreachable Redis took %v", el)
	}
}
