// Package loadgen runs closed-loop clients for tests that break something
// under load (a drain, a restart, a deleted replica) and then check that no
// request failed.
package loadgen

import (
	"sync"
	"testing"
	"time"
)

// Load is clients that each call do again as soon as its last call
// returned, until Stop.
type Load struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu  sync.Mutex
	res Result
}

// Result counts the calls of a load.
type Result struct {
	Sent, Failed int
	First        error         // the first failure
	Slowest      time.Duration // the longest call
}

// Start runs clients goroutines calling do. The load stops at the end of
// the test if Stop was not called (a test that failed midway).
func Start(t testing.TB, clients int, do func() error) *Load {
	l := &Load{stop: make(chan struct{})}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				began := time.Now()
				err := do()
				took := time.Since(began)
				l.mu.Lock()
				l.res.Sent++
				l.res.Slowest = max(l.res.Slowest, took)
				if err != nil {
					l.res.Failed++
					if l.res.First == nil {
						l.res.First = err
					}
				}
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// Stop stops the clients, waits for their last calls and returns the
// counts.
func (l *Load) Stop() Result {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

// StopNoneFailed stops the load and fails t if any call failed; during
// says when, in the message ("across the restart").
func (l *Load) StopNoneFailed(t testing.TB, during string) Result {
	t.Helper()
	res := l.Stop()
	if res.Failed > 0 {
		t.Fatalf("%d of %d requests failed %s; first: %v", res.Failed, res.Sent, during, res.First)
	}
	return res
}
