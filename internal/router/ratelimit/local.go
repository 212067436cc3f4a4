package ratelimit

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// localBucket is a token bucket of this router replica: limit tokens per
// period, refilled continuously, holding at most limit (upstream's burst).
type localBucket struct {
	lim   *rate.Limiter
	limit int
	per   time.Duration
}

func newLocalBucket(limit uint32, per time.Duration) *localBucket {
	return &localBucket{lim: rate.NewLimiter(rate.Limit(float64(limit)/per.Seconds()), int(limit)), limit: int(limit), per: per}
}

func (b *localBucket) take(_ context.Context, n int) (bool, time.Duration, error) {
	now := time.Now()
	r := b.lim.ReserveN(now, n)
	if !r.OK() {
		return false, b.per, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}

func (b *localBucket) has(_ context.Context, n int) (bool, time.Duration, error) {
	tokens := b.lim.TokensAt(time.Now())
	if tokens >= float64(n) {
		return true, 0, nil
	}
	return false, time.Duration((float64(n) - tokens) / float64(b.lim.Limit()) * float64(time.Second)), nil
}

// spend reserves without cancelling: the limiter's tokens go negative, the
// debt that delays later requests.
func (b *localBucket) spend(_ context.Context, n int) error {
	now := time.Now()
	for n > 0 {
		c := min(n, b.limit)
		b.lim.ReserveN(now, c)
		n -= c
	}
	return nil
}
