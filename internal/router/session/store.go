package session

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Store keeps session bindings: a key (chosen by Affinity, already scoped to
// one ModelServer) to the key of a pod, for a time to live. Implementations
// are safe for concurrent use.
type Store interface {
	// Get returns the pod bound to key; ok is false when there is none or it
	// has expired.
	Get(ctx context.Context, key string) (pod string, ok bool, err error)
	// Set binds key to pod for ttl, replacing any binding and restarting
	// its lifetime. A ttl ≤ 0 removes the binding.
	Set(ctx context.Context, key, pod string, ttl time.Duration) error
	// Delete removes the binding of key, if any.
	Delete(ctx context.Context, key string) error
}

var _ Store = (*MemoryStore)(nil)

// DefaultMaxEntries bounds a MemoryStore made with a bound ≤ 0.
const DefaultMaxEntries = 1 << 16

// evictSample is how many entries a full shard looks at to make room.
const evictSample = 16

// sweepEvery is the least time between two full sweeps of one shard.
const sweepEvery = time.Minute

// MemoryStore is a Store in the router's memory: bindings are not shared
// between router replicas. It holds at most its bound of entries. Expired
// entries are dropped when read, when a full shard makes room (at most one
// full sweep of a shard per minute), or when evicted. When a shard is still
// full, the entry of a small random sample that expires first is evicted;
// since every request refreshes its binding, that is close to the least
// recently used one.
type MemoryStore struct {
	shards   []memShard
	perShard int
	seed     maphash.Seed
	start    time.Time
	now      func() time.Time
}

type memShard struct {
	mu        sync.Mutex
	m         map[string]memEntry
	lastSweep int64
}

type memEntry struct {
	pod     string
	expires int64 // nanoseconds since the store's start
}

// NewMemoryStore returns an empty MemoryStore that holds at most maxEntries
// bindings (DefaultMaxEntries when maxEntries ≤ 0).
func NewMemoryStore(maxEntries int) *MemoryStore {
	return newMemoryStore(maxEntries, time.Now)
}

func newMemoryStore(maxEntries int, now func() time.Time) *MemoryStore {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	// Enough shards to keep lock contention low, each big enough for the
	// sampled eviction to be meaningful.
	n := min(max(maxEntries/1024, 1), 16)
	s := &MemoryStore{
		shards:   make([]memShard, n),
		perShard: maxEntries / n,
		seed:     maphash.MakeSeed(),
		start:    now(),
		now:      now,
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]memEntry)
	}
	return s
}

func (s *MemoryStore) clock() int64 { return int64(s.now().Sub(s.start)) }

func (s *MemoryStore) shard(key string) *memShard {
	if len(s.shards) == 1 {
		return &s.shards[0]
	}
	return &s.shards[maphash.String(s.seed, key)%uint64(len(s.shards))]
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, key string) (string, bool, error) {
	sh, now := s.shard(key), s.clock()
	sh.mu.Lock()
	e, ok := sh.m[key]
	if ok && e.expires <= now {
		delete(sh.m, key)
		ok = false
	}
	sh.mu.Unlock()
	if !ok {
		return "", false, nil
	}
	return e.pod, true, nil
}

// Set implements Store.
func (s *MemoryStore) Set(ctx context.Context, key, pod string, ttl time.Duration) error {
	if ttl <= 0 {
		return s.Delete(ctx, key)
	}
	sh, now := s.shard(key), s.clock()
	sh.mu.Lock()
	if _, exists := sh.m[key]; !exists && len(sh.m) >= s.perShard {
		sh.makeRoom(now, s.perShard)
	}
	sh.m[key] = memEntry{pod: pod, expires: now + int64(ttl)}
	sh.mu.Unlock()
	return nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, key string) error {
	sh := s.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
	return nil
}

// Len returns the number of entries held, expired ones not yet dropped
// included.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// makeRoom frees at least one entry of a full shard. The caller holds sh.mu.
func (sh *memShard) makeRoom(now int64, limit int) {
	if now-sh.lastSweep >= int64(sweepEvery) || sh.lastSweep == 0 {
		sh.lastSweep = max(now, 1)
		for k, e := range sh.m {
			if e.expires <= now {
				delete(sh.m, k)
			}
		}
		if len(sh.m) < limit {
			return
		}
	}
	// Map iteration starts at a random place: the first entries seen are a
	// random sample.
	victim, soonest, seen := "", int64(0), 0
	for k, e := range sh.m {
		if e.expires <= now {
			delete(sh.m, k)
			return
		}
		if seen == 0 || e.expires < soonest {
			victim, soonest = k, e.expires
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(sh.m, victim)
}
