package loadgen

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadCounts(t *testing.T) {
	var calls atomic.Int64
	l := Start(t, 4, func() error {
		time.Sleep(time.Millisecond)
		if calls.Add(1)%3 == 0 {
			return errors.New("every third")
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	res := l.Stop()
	if res.Sent == 0 || int64(res.Sent) != calls.Load() {
		t.Fatalf("sent %d, calls %d", res.Sent, calls.Load())
	}
	if res.Failed != res.Sent/3 || res.First == nil || res.Slowest < time.Millisecond {
		t.Fatalf("%+v", res)
	}
	if again := l.Stop(); again != res {
		t.Fatalf("second Stop %+v, first %+v", again, res)
	}
}
