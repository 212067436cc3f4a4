package faultbench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/ratelimit"
	"github.com/kthena/kthena/internal/testing/realserver"
)

// stop ends what the run's scenarios shared: redis-server and its directory.
func (s *shared) stop() {
	if s.redis != nil {
		s.redis.Stop()
	}
	if s.redisDir != "" {
		_ = os.RemoveAll(s.redisDir)
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
		e.shared.redisDir = dir
		if e.shared.redis, err = realserver.LaunchRedis(dir); err != nil {
			return nil, err
		}
	}
	return &networkingv1alpha1.RateLimit{
		InputTokensPerUnit: ptr.To[uint32](10_000_000), OutputTokensPerUnit: ptr.To[uint32](10_000_000),
		Unit:   networkingv1alpha1.Minute,
		Global: &networkingv1alpha1.GlobalRateLimit{Redis: &networkingv1alpha1.RedisConfig{Address: e.shared.redis.Addr}},
	}, nil
}

// restartRedis kills redis-server under load, keeps it down for down, starts
// it again (empty) and waits until the routers use it again: the model's
// bucket keys are back.
func (e *env) restartRedis(ctx context.Context, down time.Duration) error {
	r := e.shared.redis
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	keys, err := c.Keys(ctx, ratelimit.KeyPrefix+"*").Result()
	if err != nil || !containsModel(keys, e.model) {
		return fmt.Errorf("the routers keep no bucket of %s in Redis before the fault (keys %v, %v)", e.model, keys, err)
	}
	r.Stop()
	if err := sleepCtx(ctx, down); err != nil {
		return err
	}
	if err := r.Restart(); err != nil {
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
