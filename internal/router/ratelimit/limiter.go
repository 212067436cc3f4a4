// Package ratelimit enforces ModelRoute.spec.rateLimit: input and output
// tokens per unit of time for a model, in each router replica (token buckets
// in memory) or shared by every replica through Redis (a token bucket in a
// Lua script on Redis' clock).
//
// A request is admitted when its input tokens fit in the input bucket and at
// least one output token is left; the output tokens it generated are taken
// from the output bucket after the response, going into debt if they exceed
// what was left, so a long answer delays the next requests rather than
// passing unaccounted.
//
// While the Redis of a global limit fails, each replica enforces that limit
// on its own (fails open to a local bucket), so an outage of the store takes
// no model down and leaves it bounded by replicas times the limit.
package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/metrics"
	"github.com/kthena/kthena/internal/router/redispool"
)

// Token kinds, as in errors, keys and metrics.
const (
	Input  = "input"
	Output = "output"
)

// Limits is a route's rate limit in a usable form.
type Limits struct {
	Input, Output uint32 // tokens per Per; 0 is no limit
	Per           time.Duration
	Unit          string // Per's name: second, minute, ...
	// Redis is the address of the shared store; empty is local.
	Redis string
}

// LimitsOf converts a ModelRoute's rateLimit (nil: no limits).
func LimitsOf(rl *networkingv1alpha1.RateLimit) Limits {
	if rl == nil {
		return Limits{}
	}
	l := Limits{Per: unitDuration(rl.Unit), Unit: string(rl.Unit)}
	if l.Unit == "" {
		l.Unit = string(networkingv1alpha1.Second)
	}
	if rl.InputTokensPerUnit != nil {
		l.Input = *rl.InputTokensPerUnit
	}
	if rl.OutputTokensPerUnit != nil {
		l.Output = *rl.OutputTokensPerUnit
	}
	if rl.Global != nil && rl.Global.Redis != nil {
		l.Redis = rl.Global.Redis.Address
	}
	return l
}

// Empty reports whether l limits nothing.
func (l Limits) Empty() bool { return l.Input == 0 && l.Output == 0 }

func unitDuration(u networkingv1alpha1.RateLimitUnit) time.Duration {
	switch u {
	case networkingv1alpha1.Minute:
		return time.Minute
	case networkingv1alpha1.Hour:
		return time.Hour
	case networkingv1alpha1.Day:
		return 24 * time.Hour
	case networkingv1alpha1.Month:
		return 30 * 24 * time.Hour // upstream's month
	}
	return time.Second
}

// Denied is the error of a request over a limit.
type Denied struct {
	Kind       string
	Limit      uint32
	Unit       string
	RetryAfter time.Duration
	// Never: the request alone needs more than the bucket holds.
	Never bool
}

func (d *Denied) Error() string {
	if d.Never {
		return fmt.Sprintf("the request needs more %s tokens than the limit of %d per %s allows", d.Kind, d.Limit, d.Unit)
	}
	return fmt.Sprintf("%s token rate limit of %d per %s reached; retry after %s", d.Kind, d.Limit, d.Unit, d.RetryAfter.Round(time.Millisecond))
}

// bucket is one token bucket, local or in Redis.
type bucket interface {
	// take removes n tokens if they are all there, else reports the wait.
	take(ctx context.Context, n int) (ok bool, wait time.Duration, err error)
	// has reports whether n tokens are there, without taking them.
	has(ctx context.Context, n int) (ok bool, wait time.Duration, err error)
	// spend removes n tokens, going into debt.
	spend(ctx context.Context, n int) error
}

// Limiter holds the buckets of every limited route. It is safe for
// concurrent use.
type Limiter struct {
	pool    *redispool.Pool
	metrics *metrics.Metrics
	log     logr.Logger

	perTenant atomic.Bool

	mu      sync.Mutex
	buckets map[bucketKey]bucket
	// storeDown holds, per Redis address in an outage, when to try it again.
	storeDown map[string]time.Time
	// lastErrLog limits the log lines of a Redis outage.
	lastErrLog time.Time
}

// storeRetry is how long global limits are enforced locally after their
// Redis failed before it is tried again: an unreachable Redis (a dial
// timeout, retries) then delays one request a second, not every request.
const storeRetry = time.Second

// bucketKey names a bucket by route, kind and the limit it enforces, so a
// changed limit starts a new bucket.
type bucketKey struct {
	route, kind string
	limit       uint32
	per         time.Duration
	redis       string
}

// New returns a Limiter; pool serves global limits (nil: global limits are
// enforced locally), m may be nil.
func New(pool *redispool.Pool, m *metrics.Metrics, log logr.Logger) *Limiter {
	return &Limiter{pool: pool, metrics: m, log: log, buckets: map[bucketKey]bucket{}, storeDown: map[string]time.Time{}}
}

// SetPerTenant makes each tenant of a route get the route's limits
// (router configuration rateLimit.scope: tenant); off, a route has one
// bucket per kind, as upstream.
func (l *Limiter) SetPerTenant(on bool) { l.perTenant.Store(on) }

// scope is the bucket owner: the route, or the route and tenant.
func (l *Limiter) scope(route, tenant string) string {
	if l.perTenant.Load() {
		return route + "/" + tenant
	}
	return route
}

func (l *Limiter) bucket(route, kind string, lim Limits) bucket {
	limit := lim.Input
	if kind == Output {
		limit = lim.Output
	}
	k := bucketKey{route: route, kind: kind, limit: limit, per: lim.Per, redis: lim.Redis}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[k]
	if !ok {
		if lim.Redis != "" && l.pool != nil {
			b = &sharedBucket{l: l, addr: lim.Redis, route: route,
				remote: newRedisBucket(l.pool.Client(lim.Redis), route, kind, limit, lim.Per),
				local:  newLocalBucket(limit, lim.Per)}
		} else {
			b = newLocalBucket(limit, lim.Per)
		}
		l.buckets[k] = b
	}
	return b
}

// Admit takes a request's input tokens and checks that an output token is
// left. It returns a *Denied when the request is over a limit. While a
// global limit's Redis fails, the replica's own bucket for that limit
// decides (counted and logged): a Redis outage must not take every model
// down, nor lift the limits.
func (l *Limiter) Admit(ctx context.Context, route, tenant, model string, lim Limits, inputTokens int) error {
	route = l.scope(route, tenant)
	if lim.Output > 0 {
		ok, wait, err := l.bucket(route, Output, lim).has(ctx, 1)
		if err != nil {
			l.log.Error(err, "rate limit bucket failed; letting the request through", "modelRoute", route)
		} else if !ok {
			return l.deny(model, &Denied{Kind: Output, Limit: lim.Output, Unit: lim.Unit, RetryAfter: wait})
		}
	}
	if lim.Input > 0 && inputTokens > 0 {
		if inputTokens > int(lim.Input) {
			return l.deny(model, &Denied{Kind: Input, Limit: lim.Input, Unit: lim.Unit, Never: true})
		}
		ok, wait, err := l.bucket(route, Input, lim).take(ctx, inputTokens)
		if err != nil {
			l.log.Error(err, "rate limit bucket failed; letting the request through", "modelRoute", route)
		} else if !ok {
			return l.deny(model, &Denied{Kind: Input, Limit: lim.Input, Unit: lim.Unit, RetryAfter: wait})
		}
	}
	return nil
}

// Consume takes the output tokens of an answered request.
func (l *Limiter) Consume(ctx context.Context, route, tenant string, lim Limits, outputTokens int) {
	if lim.Output == 0 || outputTokens <= 0 {
		return
	}
	route = l.scope(route, tenant)
	if err := l.bucket(route, Output, lim).spend(ctx, outputTokens); err != nil {
		l.log.Error(err, "rate limit bucket failed; output tokens not counted", "modelRoute", route)
	}
}

func (l *Limiter) deny(model string, d *Denied) error {
	if m := l.metrics; m != nil {
		m.RateLimited.WithLabelValues(model, d.Kind).Inc()
	}
	return d
}

// storeUsable reports whether the Redis at addr is to be used now: it is
// not in an outage, or its retry time has come.
func (l *Limiter) storeUsable(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	until, down := l.storeDown[addr]
	return !down || !time.Now().Before(until)
}

// storeFailed counts and logs a failed Redis call (at most a line every
// 10 s) and marks addr down until storeRetry has passed.
func (l *Limiter) storeFailed(err error, addr, route string) {
	if m := l.metrics; m != nil {
		m.RateLimitStoreErrors.Inc()
	}
	l.mu.Lock()
	l.storeDown[addr] = time.Now().Add(storeRetry)
	quiet := time.Since(l.lastErrLog) < 10*time.Second
	if !quiet {
		l.lastErrLog = time.Now()
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Error(err, "global rate limit store failed; enforcing its limits in this replica alone until it answers", "redis", addr, "modelRoute", route)
	}
}

// storeAnswered ends addr's outage, if it had one.
func (l *Limiter) storeAnswered(addr string) {
	l.mu.Lock()
	_, down := l.storeDown[addr]
	delete(l.storeDown, addr)
	l.mu.Unlock()
	if down {
		l.log.Info("global rate limit store answers again; limits shared again", "redis", addr)
	}
}

// sharedBucket is a global limit's bucket: in Redis, or, while that Redis
// fails, this replica's own bucket of the same limit. The local bucket keeps
// its state from one outage to the next; Redis restarted empty starts full.
type sharedBucket struct {
	l      *Limiter
	addr   string
	route  string
	remote *redisBucket
	local  *localBucket
}

func (b *sharedBucket) use(op func(bucket) (bool, time.Duration, error)) (bool, time.Duration, error) {
	if b.l.storeUsable(b.addr) {
		ok, wait, err := op(b.remote)
		if err == nil {
			b.l.storeAnswered(b.addr)
			return ok, wait, nil
		}
		b.l.storeFailed(err, b.addr, b.route)
	}
	return op(b.local)
}

func (b *sharedBucket) take(ctx context.Context, n int) (bool, time.Duration, error) {
	return b.use(func(x bucket) (bool, time.Duration, error) { return x.take(ctx, n) })
}

func (b *sharedBucket) has(ctx context.Context, n int) (bool, time.Duration, error) {
	return b.use(func(x bucket) (bool, time.Duration, error) { return x.has(ctx, n) })
}

func (b *sharedBucket) spend(ctx context.Context, n int) error {
	_, _, err := b.use(func(x bucket) (bool, time.Duration, error) { return true, 0, x.spend(ctx, n) })
	return err
}
