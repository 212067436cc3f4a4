package kvindex

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/tokenizer"
)

var sharedTok = sync.OnceValues(func() (*tokenizer.Tokenizer, error) { return tokenizer.New("") })

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// engines are simulated vLLM engines publishing KV events on real sockets.
type engines struct {
	f     *sim.Fleet
	ports []int
}

func startEngines(t *testing.T, n int, mut func(*sim.Config)) *engines {
	t.Helper()
	tok, err := sharedTok()
	require.NoError(t, err)
	e := &engines{}
	var cfgs []sim.Config
	for range n {
		port := freePort(t)
		e.ports = append(e.ports, port)
		c := sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho, KVEventsEndpoint: fmt.Sprintf("tcp://*:%d", port), BlockSize: 16}
		if mut != nil {
			mut(&c)
		}
		cfgs = append(cfgs, c)
	}
	e.f, err = sim.StartFleet(context.Background(), sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.f.Close() })
	return e
}

func (e *engines) pod(i int) string      { return fmt.Sprintf("default/engine-%d", i) }
func (e *engines) endpoint(i int) string { return fmt.Sprintf("tcp://127.0.0.1:%d", e.ports[i]) }

// subscribe points a new backend at every engine.
func (e *engines) subscribe(t *testing.T, maxBlocks int) *Backend {
	t.Helper()
	b, err := NewBackend(kvcacheaware.IndexOptions{MaxBlocks: maxBlocks, TierWeights: gpuFirst}, logr.Discard())
	require.NoError(t, err)
	t.Cleanup(b.Close)
	for i := range e.ports {
		b.Ensure(e.pod(i), e.endpoint(i), "")
	}
	return b
}

func post(t *testing.T, url string, body any) []byte {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, out.String())
	return out.Bytes()
}

func (e *engines) chat(t *testing.T, i int, content string) {
	post(t, e.f.URL(i)+"/v1/chat/completions", map[string]any{"model": sim.DefaultModel, "max_tokens": 1,
		"messages": []map[string]string{{"role": "user", "content": content}}})
}

func chatTokens(t *testing.T, content string) []int {
	tok, err := sharedTok()
	require.NoError(t, err)
	ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: content}}, true)
	require.NoError(t, err)
	return ids
}

// warm sends throw-away prompts until every engine's events reach b (ZMQ
// drops what is published before a subscription is in place).
func (e *engines) warm(t *testing.T, bs ...*Backend) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := range e.ports {
		for n := 0; ; n++ {
			ok := true
			for _, b := range bs {
				ok = ok && b.x.Known(e.pod(i))
			}
			if ok {
				break
			}
			require.True(t, time.Now().Before(deadline), "no events from %s", e.pod(i))
			e.chat(t, i, fmt.Sprintf("warm-up %d %s", n, strings.Repeat("pad ", 12)))
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// indexed is what b says pod caches of tokens, in tokens, on the blocks
// the engine could reuse (never the last prompt token).
func indexed(b *Backend, pod string, tokens []int) int {
	bs := b.x.BlockSize(pod)
	if bs == 0 {
		return 0
	}
	keys := Keys(tokens[:len(tokens)-1], false, "", bs, 0)
	return b.x.Lookup(keys, []string{pod}, gpuFirst)[pod].Blocks * bs
}

// converge waits until the index agrees with every engine's own cache on
// each prompt, and fails with the last difference.
func (e *engines) converge(t *testing.T, b *Backend, prompts ...[]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		diff := ""
		for i, eng := range e.f.Engines {
			for j, p := range prompts {
				if got, want := indexed(b, e.pod(i), p), eng.CachedPrefixTokens(p, ""); got != want {
					diff = fmt.Sprintf("engine %d prompt %d: index %d tokens, engine %d", i, j, got, want)
				}
			}
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The index follows stores, evictions, a cache reset and a pod's
// departure, and always equals what each engine really caches.
func TestIndexFollowsSimulatedEngines(t *testing.T) {
	e := startEngines(t, 2, func(c *sim.Config) { c.KVCacheSize = 96 })
	b := e.subscribe(t, 0)
	e.warm(t, b)

	a := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 30)
	c := strings.Repeat("Pack my box with five dozen liquor jugs. ", 30)
	pa, pc := chatTokens(t, a), chatTokens(t, c)
	e.chat(t, 0, a)
	e.chat(t, 1, c)
	e.converge(t, b, pa, pc)
	require.Greater(t, indexed(b, e.pod(0), pa), 300)
	require.Zero(t, indexed(b, e.pod(1), pa))

	// A longer conversation sharing a's prefix matches a's blocks.
	pa2 := chatTokens(t, a+" And then some more text follows here.")
	e.converge(t, b, pa2)
	require.Greater(t, indexed(b, e.pod(0), pa2), 300)

	// Fill engine 0 so that a is evicted (BlockRemoved).
	for i := 0; e.f.Engines[0].CachedPrefixTokens(pa, "") > 0; i++ {
		require.Less(t, i, 200)
		e.chat(t, 0, fmt.Sprintf("filler %d %s", i, strings.Repeat("eviction filler text ", 40)))
	}
	e.converge(t, b, pa, pc)
	require.Zero(t, indexed(b, e.pod(0), pa))

	// Reset engine 1's prefix cache (AllBlocksCleared).
	post(t, e.f.URL(1)+"/reset_prefix_cache", map[string]any{})
	e.converge(t, b, pa, pc)
	require.Zero(t, indexed(b, e.pod(1), pc))
	require.Zero(t, b.x.PodSize(e.pod(1)))

	// Engine 0 leaves.
	e.chat(t, 0, c)
	e.converge(t, b, pc)
	require.NotZero(t, b.x.PodSize(e.pod(0)))
	b.Remove(e.pod(0))
	require.Zero(t, b.x.PodSize(e.pod(0)))
	require.False(t, b.x.Known(e.pod(0)))
	require.Zero(t, b.x.Entries()-b.x.PodSize(e.pod(1)))
}

// Two routers subscribed to the same engines hold the same index and give
// the same scores (active-active, nothing shared between them).
func TestTwoRoutersHoldTheSameIndex(t *testing.T) {
	e := startEngines(t, 3, nil)
	r1, r2 := e.subscribe(t, 0), e.subscribe(t, 0)
	e.warm(t, r1, r2)
	var prompts [][]int
	for i := range 6 {
		text := fmt.Sprintf("shared system prompt %d %s", i%2, strings.Repeat("lorem ipsum dolor sit amet ", 20+i))
		e.chat(t, i%3, text)
		prompts = append(prompts, chatTokens(t, text))
	}
	e.converge(t, r1, prompts...)
	e.converge(t, r2, prompts...)
	pods := []string{e.pod(0), e.pod(1), e.pod(2)}
	for _, p := range prompts {
		s1, s2 := map[string]float64{}, map[string]float64{}
		r1.Lookup(func() ([]int, bool) { return p, false }, "", 0, pods, func(pod string, _, total int, w float64) { s1[pod] = w / float64(total) })
		r2.Lookup(func() ([]int, bool) { return p, false }, "", 0, pods, func(pod string, _, total int, w float64) { s2[pod] = w / float64(total) })
		require.Equal(t, s1, s2)
		require.Len(t, s1, 3)
	}
}

// A gap in a publisher's sequence numbers (ZMQ dropped messages) makes the
// index drop the pod's entries and rebuild from what follows.
func TestSequenceGapOverSocketResyncs(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub := zmq4.NewPub(ctx)
	require.NoError(t, pub.Listen(fmt.Sprintf("tcp://127.0.0.1:%d", port)))
	defer pub.Close()
	send := func(seq uint64, evs ...kvevents.Event) {
		payload, err := kvevents.Codec{}.Encode(batch(evs...))
		require.NoError(t, err)
		var s [8]byte
		binary.BigEndian.PutUint64(s[:], seq)
		require.NoError(t, pub.SendMulti(zmq4.NewMsgFrom([]byte("kv-events"), s[:], payload)))
	}
	b, err := NewBackend(kvcacheaware.IndexOptions{TierWeights: gpuFirst}, logr.Discard())
	require.NoError(t, err)
	defer b.Close()
	b.Ensure("pod", fmt.Sprintf("tcp://127.0.0.1:%d", port), "kv-events")

	p, q, r := toks(64, 1), toks(64, 1000), toks(64, 2000)
	wait := func(cond func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			require.True(t, time.Now().Before(deadline), what)
			time.Sleep(5 * time.Millisecond)
		}
	}
	seq := uint64(0)
	wait(func() bool { send(seq, store(p, 16, 0, 4, "GPU", "")); seq++; return b.x.Known("pod") }, "subscription")
	wait(func() bool { return matched(b.x, p, 16, "", "pod").Blocks == 4 }, "p indexed")
	send(seq, store(q, 16, 0, 4, "GPU", ""))
	wait(func() bool { return matched(b.x, q, 16, "", "pod").Blocks == 4 }, "q indexed")
	send(seq+5, store(r, 16, 0, 4, "GPU", "")) // four messages lost
	wait(func() bool { return matched(b.x, r, 16, "", "pod").Blocks == 4 }, "r indexed")
	require.Zero(t, matched(b.x, p, 16, "", "pod").Blocks)
	require.Zero(t, matched(b.x, q, 16, "", "pod").Blocks)
	require.Equal(t, 4, b.x.Entries())
	require.Equal(t, int64(1), b.x.Counters()["resyncs"])
}

// An SGLang-flavoured engine publishes the same events on topic "", which
// the default subscription (every topic) takes.
func TestSGLangEngineIndexed(t *testing.T) {
	e := startEngines(t, 1, func(c *sim.Config) { c.Engine = sim.SGLang })
	b := e.subscribe(t, 0)
	e.warm(t, b)
	text := strings.Repeat("SGLang radix caches still publish blocks. ", 20)
	e.chat(t, 0, text)
	p := chatTokens(t, text)
	e.converge(t, b, p)
	require.Greater(t, indexed(b, e.pod(0), p), 100)
}

// A flood of events from real engines never takes the index past its bound
// by more than the blocks of one message.
func TestMemoryBoundUnderEventFlood(t *testing.T) {
	e := startEngines(t, 2, func(c *sim.Config) { c.KVCacheSize = 4096 })
	const bound = 150
	b := e.subscribe(t, bound)
	e.warm(t, b)
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		m := 0
		for {
			select {
			case <-stop:
				peak <- m
				return
			default:
				m = max(m, b.x.Entries())
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				e.chat(t, w%2, fmt.Sprintf("flood %d-%d %s", w, i, strings.Repeat("distinct text for the cache ", 60)))
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for b.x.Counters()["evicted"] == 0 || b.x.Entries() > bound {
		require.True(t, time.Now().Before(deadline), "entries %d, counters %v", b.x.Entries(), b.x.Counters())
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	p := <-peak
	stored := b.x.Counters()["stored"]
	t.Logf("stored %d blocks, peak %d entries, bound %d", stored, p, bound)
	require.Greater(t, stored, int64(5*bound))
	require.LessOrEqual(t, p, bound+256, "at most one message's blocks over the bound")
}

// An engine that restarts (Fleet.Restart: drained, then a new engine on
// the same address and event port, empty cache, sequence from 0) is
// resynchronised: the index drops what the old engine held and indexes
// what the new one stores.
func TestEngineRestartResyncs(t *testing.T) {
	e := startEngines(t, 1, func(c *sim.Config) { c.ShutdownGrace = time.Second })
	b := e.subscribe(t, 0)
	var lagged atomic.Int64
	b.x.ObserveLag(func(d time.Duration) {
		if d >= 0 && d < 10*time.Second {
			lagged.Add(1)
		}
	})
	e.warm(t, b)
	before := strings.Repeat("Held before the restart. ", 20)
	e.chat(t, 0, before)
	p := chatTokens(t, before)
	e.converge(t, b, p)
	require.Greater(t, indexed(b, e.pod(0), p), 64)

	require.NoError(t, e.f.Restart(0, 50*time.Millisecond))
	require.Zero(t, e.f.Engine(0).CachedPrefixTokens(p, ""))
	// The lost connection already made the pod unknown; the old blocks are
	// gone before the subscriber reconnects (with backoff).
	require.Eventually(t, func() bool { return indexed(b, e.pod(0), p) == 0 }, 5*time.Second, 5*time.Millisecond)
	e.warm(t, b)
	after := strings.Repeat("Stored after the restart. ", 20)
	e.chat(t, 0, after)
	q := chatTokens(t, after)
	e.converge(t, b, p, q)
	require.Greater(t, indexed(b, e.pod(0), q), 64)
	require.Zero(t, indexed(b, e.pod(0), p), "stale blocks of the old engine")
	require.Len(t, e.f.Generations(0), 2)
	require.Positive(t, lagged.Load(), "batch ages observed")
}
