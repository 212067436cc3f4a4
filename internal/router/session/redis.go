package session

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts every key a RedisStore writes, so session bindings share
// a Redis with other data (the rate limiter's, say) without collisions. The
// full key is KeyPrefix + "<namespace>/<modelserver>:<digest of the session key>".
const KeyPrefix = "kthena:session:"

// RedisOptions configure the Redis clients of a RedisPool.
type RedisOptions struct {
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username, Password string
	// DB is the Redis database number.
	DB int
	// DialTimeout bounds connecting (default 1s).
	DialTimeout time.Duration
	// Timeout bounds each command's read and write, so an unreachable Redis
	// delays a request by little before the router schedules without
	// affinity (default 100ms). A caller's context deadline also applies.
	Timeout time.Duration
	// PoolSize is the number of connections per address (0: go-redis'
	// default, 10 per CPU).
	PoolSize int
}

func (o RedisOptions) client(addr string) *redis.Client {
	dial, timeout := o.DialTimeout, o.Timeout
	if dial <= 0 {
		dial = time.Second
	}
	if timeout <= 0 {
		timeout = 100 * time.Millisecond
	}
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		DialTimeout:           dial,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolSize:              o.PoolSize,
		MaxRetries:            1, // one retry, for a pooled connection Redis closed
		DialerRetries:         1, // an unreachable Redis must not hold requests up
		ContextTimeoutEnabled: true,
	})
}

// RedisPool hands out one RedisStore, and so one client with its connection
// pool, per Redis address. It is safe for concurrent use.
type RedisPool struct {
	opts   RedisOptions
	mu     sync.Mutex
	stores map[string]*RedisStore
}

// NewRedisPool returns a pool whose clients use opts.
func NewRedisPool(opts RedisOptions) *RedisPool {
	return &RedisPool{opts: opts, stores: make(map[string]*RedisStore)}
}

// Store returns the store of the Redis at addr (host:port), connecting
// lazily on first use.
func (p *RedisPool) Store(addr string) *RedisStore {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.stores[addr]
	if !ok {
		s = NewRedisStore(p.opts.client(addr))
		p.stores[addr] = s
	}
	return s
}

// Close closes every client of the pool; stores handed out stop working.
func (p *RedisPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, s := range p.stores {
		errs = append(errs, s.client.Close())
		delete(p.stores, addr)
	}
	return errors.Join(errs...)
}

// RedisStore is a Store in Redis, shared by every router replica that uses
// the same Redis. Each binding is one string key with a millisecond TTL.
type RedisStore struct {
	client *redis.Client
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store that uses client. Prefer RedisPool.Store,
// which shares one client per address.
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
