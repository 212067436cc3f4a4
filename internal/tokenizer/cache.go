package tokenizer

import (
	"container/list"
	"sync"
)

// segmentCache remembers the tokens of long text segments. Prompts repeat
// long parts verbatim (system prompts, documents, conversation history), and
// the chat template separates messages with special tokens, so each message
// is a segment that can be reused exactly: BPE never merges across a special
// token. Short segments are cheap to encode and not cached.
type segmentCache struct {
	minBytes int
	maxBytes int

	mu    sync.Mutex
	bytes int
	order *list.List // front = most recently used
	items map[string]*list.Element
}

type cacheEntry struct {
	text   string
	tokens []int
}

func newSegmentCache(minBytes, maxBytes int) *segmentCache {
	return &segmentCache{minBytes: minBytes, maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

// encode returns the tokens of text, from the cache when possible. The
// returned slice is shared: callers must copy before modifying it.
func (c *segmentCache) encode(text string, enc func(string) []int) []int {
	if len(text) < c.minBytes {
		return enc(text)
	}
	c.mu.Lock()
	if el, ok := c.items[text]; ok {
		c.order.MoveToFront(el)
		tokens := el.Value.(*cacheEntry).tokens
		c.mu.Unlock()
		return tokens
	}
	c.mu.Unlock()

	tokens := enc(text)
	size := len(text) + 8*len(tokens)
	if size > c.maxBytes {
		return tokens
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[text]; !ok {
		c.items[text] = c.order.PushFront(&cacheEntry{text: text, tokens: tokens})
		c.bytes += size
		for c.bytes > c.maxBytes {
			last := c.order.Back()
			e := last.Value.(*cacheEntry)
			c.order.Remove(last)
			delete(c.items, e.text)
			c.bytes -= len(e.text) + 8*len(e.tokens)
		}
	}
	return tokens
}
