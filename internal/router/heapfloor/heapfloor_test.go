package heapfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, scan, floor uint64
		want              int
	}{
		{4 * mib, 4 * mib, 64 * mib, 1500}, // goal 4 + 4 × 15 = 64 MiB
		{4 * mib, 8 * mib, 64 * mib, 750},  // stacks and globals count in the goal
		{8 * mib, 8 * mib, 64 * mib, 700},
		{32 * mib, 32 * mib, 64 * mib, 100}, // 2 × live reaches the floor
		{200 * mib, 200 * mib, 64 * mib, 100},
		{0, 0, 64 * mib, 6400}, // unknown: as for 1 MiB of scan
	} {
		if got := Percent(c.live, c.scan, c.floor, 100); got != c.want {
			t.Errorf("Percent(%d MiB, %d MiB, %d MiB) = %d, want %d", c.live/mib, c.scan/mib, c.floor/mib, got, c.want)
		}
	}
}

// The floor follows collections and Stop restores the base.
func TestFollowsCollections(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC() // a live heap measured without an earlier run's data
	f := Start(64<<20, 100)
	if f.GOGC() <= 100 {
		t.Fatalf("GOGC %d with a small heap under a 64 MiB floor", f.GOGC())
	}
	// A live heap above the floor brings GOGC back to the base after a
	// collection.
	big := make([][]byte, 0, 40)
	for range 40 {
		big = append(big, make([]byte, 1<<20))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.GOGC() != 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if f.GOGC() != 100 {
		t.Fatalf("GOGC %d with 40 MiB live", f.GOGC())
	}
	runtime.KeepAlive(big)
	f.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Fatalf("GOGC %d after Stop", p)
	}
}
