package session

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts every key a RedisStore writes, so session bindings share
// a Redis with other data (the rate limiter's, say) without collisions. The
// full key is KeyPrefix + "<namespace>/<modelserver>:<digest of the session key>".
const KeyPrefix = "kthena:session:"

// RedisStore is a Store in Redis, shared by every router replica that uses
// the same Redis. Each binding is one string key with a millisecond TTL.
type RedisStore struct {
	client *redis.Client
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store that uses client (take it from a
// redispool.Pool, which shares one client per address).
func NewRedisStore(client *redis.Client) *RedisStore { return &RedisStore{client: client} }

// Ping checks that Redis answers, for a readiness check at startup.
func (s *RedisStore) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Get implements Store.
func (s *RedisStore) Get(ctx context.Context, key string) (string, bool, error) {
	pod, err := s.client.Get(ctx, KeyPrefix+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return pod, true, nil
}

// Set implements Store: SET key pod PX ttl.
func (s *RedisStore) Set(ctx context.Context, key, pod string, ttl time.Duration) error {
	if ttl <= 0 {
		return s.Delete(ctx, key)
	}
	return s.client.Do(ctx, "set", KeyPrefix+key, pod, "px", max(ttl.Milliseconds(), 1)).Err()
}

// Delete implements Store.
func (s *RedisStore) Delete(ctx context.Context, key string) error {
	return s.client.Del(ctx, KeyPrefix+key).Err()
}
