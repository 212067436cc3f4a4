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
	// lastErrLog limits the log lines of a Redis outage.
	lastErrLog time.Time
}

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
	return &Limiter{pool: pool, metrics: m, log: log, buckets: map[bucketKey]bucket{}}
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
			b = newRedisBucket(l.pool.Client(lim.Redis), route, kind, limit, lim.Per)
		} else {
			b = newLocalBucket(limit, lim.Per)
		}
		l.buckets[k] = b
	}
	return b
}

// Admit takes a request's input tokens and checks that an output token is
// left. It returns a *Denied when the request is over a limit. A shared
// store that fails lets the request through (fail open), counted and
// logged: a Redis outage must not take every model down.
func (l *Limiter) Admit(ctx context.Context, route, tenant, model string, lim Limits, inputTokens int) error {
	route = l.scope(route, tenant)
	if lim.Output > 0 {
		ok, wait, err := l.bucket(route, Output, lim).has(ctx, 1)
		if err != nil {
			l.storeFailed(err, route)
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
			l.storeFailed(err, route)
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
		l.storeFailed(err, route)
	}
}

func (l *Limiter) deny(model string, d *Denied) error {
	if m := l.metrics; m != nil {
		m.RateLimited.WithLabelValues(model, d.Kind).Inc()
	}
	return d
}

func (l *Limiter) storeFailed(err error, route string) {
	if m := l.metrics; m != nil {
		m.RateLimitStoreErrors.Inc()
	}
	l.mu.Lock()
	quiet := time.Since(l.lastErrLog) < 10*time.Second
	if !quiet {
		l.lastErrLog = time.Now()
	}
	l.mu.Unlock()
	if !quiet {
		l.log.Error(err, "global rate limit store failed; letting requests through", "modelRoute", route)
	}
}
