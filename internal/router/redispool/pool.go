// Package redispool hands out one Redis client, with its connection pool,
// per Redis address, shared by everything in the router that uses Redis
// (session bindings, global rate limits).
package redispool

import (
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure the clients of a Pool.
type Options struct {
	// Username and Password authenticate to Redis (ACL or requirepass).
	Username, Password string
	// DB is the Redis database number.
	DB int
	// DialTimeout bounds connecting (default 1s).
	DialTimeout time.Duration
	// Timeout bounds each command's read and write, so an unreachable Redis
	// delays a request by little (default 100ms). A caller's context
	// deadline also applies.
	Timeout time.Duration
	// PoolSize is the number of connections per address (0: go-redis'
	// default, 10 per CPU).
	PoolSize int
}

func (o Options) client(addr string) *redis.Client {
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

// Pool is safe for concurrent use.
type Pool struct {
	opts    Options
	mu      sync.Mutex
	clients map[string]*redis.Client
}

// New returns a pool whose clients use opts.
func New(opts Options) *Pool {
	return &Pool{opts: opts, clients: make(map[string]*redis.Client)}
}

// Client returns the client of the Redis at addr (host:port), connecting
// lazily on first use.
func (p *Pool) Client(addr string) *redis.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[addr]
	if !ok {
		c = p.opts.client(addr)
		p.clients[addr] = c
	}
	return c
}

// Close closes every client; clients handed out stop working.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for addr, c := range p.clients {
		errs = append(errs, c.Close())
		delete(p.clients, addr)
	}
	return errors.Join(errs...)
}
