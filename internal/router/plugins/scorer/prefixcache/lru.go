package prefixcache

// lru is a fixed-capacity set of block hashes in recency order, with nodes
// kept in one slice (no allocation per entry once full).
type lru struct {
	cap   int
	items map[uint64]int32 // hash -> node index
	nodes []node
	head  int32 // most recent
	tail  int32 // least recent
}

type node struct {
	h          uint64
	prev, next int32
}

func newLRU(capacity int) *lru {
	return &lru{cap: capacity, items: map[uint64]int32{}, head: -1, tail: -1}
}

// touch marks h most recent and reports whether it was present.
func (l *lru) touch(h uint64) bool {
	i, ok := l.items[h]
	if !ok {
		return false
	}
	l.unlink(i)
	l.pushFront(i)
	return true
}

// add inserts a new h; when full it evicts and returns the least recent.
func (l *lru) add(h uint64) (evicted uint64, ok bool) {
	var i int32
	if len(l.nodes) < l.cap {
		l.nodes = append(l.nodes, node{})
		i = int32(len(l.nodes) - 1)
	} else {
		i = l.tail
		evicted, ok = l.nodes[i].h, true
		delete(l.items, evicted)
		l.unlink(i)
	}
	l.nodes[i].h = h
	l.items[h] = i
	l.pushFront(i)
	return evicted, ok
}

func (l *lru) unlink(i int32) {
	n := &l.nodes[i]
	if n.prev >= 0 {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
}

func (l *lru) pushFront(i int32) {
	n := &l.nodes[i]
	n.prev, n.next = -1, l.head
	if l.head >= 0 {
		l.nodes[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}
