package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyPrefix starts the keys of global rate limits:
// KeyPrefix + "<namespace>/<modelroute>:<input|output>".
const KeyPrefix = "kthena:ratelimit:"

// bucketScript is a token bucket on Redis' clock (TIME), so that router
// replicas with skewed clocks share one bucket. KEYS[1] is the bucket;
// ARGV: capacity, refill per second, tokens, mode (take: all or nothing,
// has: check only, spend: take into debt), key expiry in seconds. It
// returns {1|0, seconds to wait as a string}.
var bucketScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local mode = ARGV[4]
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = cap
  ts = now
end
tokens = math.min(cap, tokens + math.max(0, now - ts) * refill)
local ok = 1
if mode == 'take' then
  if tokens >= n then tokens = tokens - n else ok = 0 end
elseif mode == 'spend' then
  tokens = tokens - n
elseif tokens < n then
  ok = 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
local wait = 0
if ok == 0 then wait = (n - tokens) / refill end
return {ok, tostring(wait)}
`)

type redisBucket struct {
	c      *redis.Client
	key    string
	limit  uint32
	refill float64
	ttl    int64
}

func newRedisBucket(c *redis.Client, route, kind string, limit uint32, per time.Duration) *redisBucket {
	// Keys outlive a quiet spell (3 periods, as upstream: at least 10
	// minutes, at most 90 days).
	ttl := min(max(3*per, 10*time.Minute), 90*24*time.Hour)
	return &redisBucket{c: c, key: KeyPrefix + route + ":" + kind, limit: limit,
		refill: float64(limit) / per.Seconds(), ttl: int64(ttl / time.Second)}
}

func (b *redisBucket) run(ctx context.Context, n int, mode string) (bool, time.Duration, error) {
	res, err := bucketScript.Run(ctx, b.c, []string{b.key}, b.limit, strconv.FormatFloat(b.refill, 'g', -1, 64), n, mode, b.ttl).Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit bucket %s: %w", b.key, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("rate limit bucket %s: unexpected reply %v", b.key, res)
	}
	ok, _ := res[0].(int64)
	ws, _ := res[1].(string)
	wait, _ := strconv.ParseFloat(ws, 64)
	return ok == 1, time.Duration(wait * float64(time.Second)), nil
}

func (b *redisBucket) take(ctx context.Context, n int) (bool, time.Duration, error) {
	return b.run(ctx, n, "take")
}

func (b *redisBucket) has(ctx context.Context, n int) (bool, time.Duration, error) {
	return b.run(ctx, n, "has")
}

func (b *redisBucket) spend(ctx context.Context, n int) error {
	_, _, err := b.run(ctx, n, "spend")
	return err
}
