package sim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/tokenizer"
	"github.com/openai/openai-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestKVEventsStoredThenRemovedAfterEviction(t *testing.T) {
	port := freePort(t)
	f := startFleet(t, fastConfig(func(c *Config) {
		c.KVEventsEndpoint = fmt.Sprintf("tcp://*:%d", port)
		c.KVCacheSize = 64 // 1024 tokens: a few long prompts evict each other
	}))
	sub, err := kvevents.NewSubscriber(context.Background(), fmt.Sprintf("tcp://127.0.0.1:%d", port), "kv-events")
	require.NoError(t, err)
	defer sub.Close()

	type result struct {
		msg kvevents.Message
		err error
	}
	msgs := make(chan result, 256)
	go func() {
		for {
			m, err := sub.Recv()
			msgs <- result{m, err}
			if err != nil {
				return
			}
		}
	}()

	c := client(f, 0)
	send := func(text string) {
		_, err := c.Chat.Completions.New(testCtx(t), openai.ChatCompletionNewParams{Model: DefaultModel,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}, MaxTokens: openai.Int(1)})
		require.NoError(t, err)
	}
	// ZMQ drops messages until the subscription reaches the publisher, so
	// send small warm-up prompts until an event arrives.
	stored := map[uint64]bool{}
	deadline := time.After(10 * time.Second)
warmup:
	for i := 0; ; i++ {
		send(fmt.Sprintf("warm-up prompt number %d %s", i, strings.Repeat("pad ", 20)))
		select {
		case r := <-msgs:
			require.NoError(t, r.err)
			assert.Equal(t, "kv-events", r.msg.Topic)
			break warmup
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no KV event reached the subscriber")
		}
	}

	prompt := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40)
	send(prompt)
	tok := f.Engines[0].Tokenizer()
	ids, err := tok.EncodeChat([]tokenizer.Message{{Role: "user", Content: prompt}}, true)
	require.NoError(t, err)
	want := kvcache.NewHasher("").Chain(ids, 16, nil)
	require.NotEmpty(t, want)
	first := kvevents.BlockHash(want[0][:]).Uint64()

	var sawStored, sawRemoved bool
	evictions := 0
	timeout := time.After(15 * time.Second)
	for !(sawStored && sawRemoved) {
		select {
		case r := <-msgs:
			require.NoError(t, r.err)
			for _, ev := range r.msg.Batch.Events {
				switch ev := ev.(type) {
				case kvevents.BlockStored:
					for _, h := range ev.BlockHashes {
						stored[h.Uint64()] = true
					}
					assert.Equal(t, 16, ev.BlockSize)
					assert.Equal(t, len(ev.BlockHashes)*16, len(ev.TokenIDs))
				case kvevents.BlockRemoved:
					for _, h := range ev.BlockHashes {
						if h.Uint64() == first {
							sawRemoved = true
						}
					}
				}
			}
			if stored[first] {
				sawStored = true
			}
		case <-timeout:
			t.Fatalf("stored=%v removed=%v", sawStored, sawRemoved)
		default:
			if sawStored && !sawRemoved {
				// Fill the cache with other prompts to evict the first.
				send(fmt.Sprintf("eviction filler %d %s", evictions, strings.Repeat("filler text ", 120)))
				evictions++
			} else {
				time.Sleep(time.Millisecond)
			}
		}
	}
	assert.Zero(t, f.Engines[0].CachedPrefixTokens(ids, ""), "the evicted prefix is gone")
}
