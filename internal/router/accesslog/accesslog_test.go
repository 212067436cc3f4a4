package accesslog

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	block  chan struct{} // non-nil: writes wait for it to close
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	if l.block != nil {
		<-l.block
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func entry(id string) *Entry {
	return &Entry{Timestamp: time.Unix(0, 0), Method: "POST", Path: "/v1/chat/completions", Protocol: "HTTP/1.1", StatusCode: 200, RequestID: id}
}

// Entries logged together go out in one write, in order, soon after the
// first; Close writes what is left.
func TestBatchedInOrder(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var out lockedBuffer
		l, err := New(&out, format)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			l.Log(entry(strings.Repeat("x", i%7+1)))
		}
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(out.String(), "\n") < 100 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := strings.Count(out.String(), "\n"); n != 100 {
			t.Fatalf("%s: %d lines written without Close, want 100", format, n)
		}
		if out.writes > 3 {
			t.Fatalf("%s: %d writes for 100 entries logged at once", format, out.writes)
		}
		l.Log(entry("last"))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 101 || !strings.Contains(lines[100], "last") || !strings.Contains(lines[6], "xxxxxxx") {
			t.Fatalf("%s: %d lines, last %q", format, len(lines), lines[len(lines)-1])
		}
		l.Log(entry("after close"))
		if l.Dropped() != 1 {
			t.Fatalf("%s: an entry after Close was not counted as dropped", format)
		}
	}
}

// A blocked output does not block Log: entries beyond the bound are
// dropped and counted.
func TestBlockedOutputDrops(t *testing.T) {
	out := lockedBuffer{block: make(chan struct{})}
	l, err := New(&out, "text")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 * maxPending / 100 {
			l.Log(entry("r"))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Log blocked on a blocked output")
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped")
	}
	close(out.block)
	_ = l.Close()
}

// Formatting an entry allocates nothing once the buffers have grown.
func TestLogAllocs(t *testing.T) {
	l, err := New(&lockedBuffer{}, "text")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e := entry("abc")
	e.Stages = &Stages{BodyRead: time.Microsecond, End: time.Millisecond}
	for range 100 {
		l.Log(e)
	}
	time.Sleep(3 * FlushInterval)
	if n := testing.AllocsPerRun(100, func() { l.Log(e) }); n > 0 {
		t.Fatalf("%.1f allocations per entry", n)
	}
}
