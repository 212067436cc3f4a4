package faultbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/ratelimit"
)

// redisServer is a throwaway redis-server (no persistence, as a cache-only
// deployment runs it) that a scenario kills and starts again on the same
// address.
type redisServer struct {
	addr, bin, dir string
	cmd            *exec.Cmd
	exited         chan struct{}
}

func startRedis(dir string) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (hack/system-deps.sh installs it): %w", err)
	}
	var lastErr error
	for range 3 { // the free port may be taken before redis-server binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := l.Addr().String()
		_ = l.Close()
		r := &redisServer{addr: addr, bin: bin, dir: dir}
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

func (r *redisServer) start() error {
	_, port, _ := net.SplitHostPort(r.addr)
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited at start", r.addr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s not answering", r.addr)
		}
	}
	r.cmd, r.exited = cmd, exited
	return nil
}

// kill stops the server at once (SIGKILL: its data is lost).
func (r *redisServer) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// restart starts it again on its address.
func (r *redisServer) restart() error {
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func (s *shared) stop() {
	if s.redis != nil {
		s.redis.kill()
		_ = os.RemoveAll(s.redis.dir)
	}
}

// globalRateLimit starts redis-server (once per run) and returns a global
// rate limit on it far above what the load sends, so that nothing is refused
// while Redis is up.
func (e *env) globalRateLimit(context.Context) (*networkingv1alpha1.RateLimit, error) {
	if e.shared.redis == nil {
		dir, err := os.MkdirTemp("", "kthena-faults-redis-")
		if err != nil {
			return nil, err
		}
		if e.shared.redis, err = startRedis(dir); err != nil {
			return nil, err
		}
	}
	return &networkingv1alpha1.RateLimit{
		InputTokensPerUnit: ptr.To[uint32](10_000_000), OutputTokensPerUnit: ptr.To[uint32](10_000_000),
		Unit:   networkingv1alpha1.Minute,
		Global: &networkingv1alpha1.GlobalRateLimit{Redis: &networkingv1alpha1.RedisConfig{Address: e.shared.redis.addr}},
	}, nil
}

// restartRedis kills redis-server under load, keeps it down for down, starts
// it again (empty) and waits until the routers use it again: the model's
// bucket keys are back.
func (e *env) restartRedis(ctx context.Context, down time.Duration) error {
	r := e.shared.redis
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	keys, err := c.Keys(ctx, ratelimit.KeyPrefix+"*").Result()
	if err != nil || !containsModel(keys, e.model) {
		return fmt.Errorf("the routers keep no bucket of %s in Redis before the fault (keys %v, %v)", e.model, keys, err)
	}
	r.kill()
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	if err := r.restart(); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		keys, err := c.Keys(ctx, ratelimit.KeyPrefix+"*").Result()
		if err == nil && containsModel(keys, e.model) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the routers did not use Redis again within 30 s of its restart (keys %v, %v)", keys, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func containsModel(keys []string, model string) bool {
	for _, k := range keys {
		if strings.Contains(k, "/"+model+":") {
			return true
		}
	}
	return false
}
