// Package heapfloor keeps the garbage collector's heap goal at or above a
// floor while the live heap is small.
//
// The router's live heap is a few MiB (routes, pods, caches) while it
// allocates some 15 KiB per request, so with GOGC=100 it collects every few
// MiB: two to four times a second at 1,000 requests/s, each cycle taking
// one of two cores for milliseconds and stopping the world twice, which
// requests arriving meanwhile wait for. A heap goal of max(floor, 2 × live)
// collects several times less often at the cost of up to the floor in
// memory; once the live heap is above half the floor, GOGC=100 applies as
// before.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// Floor adjusts GOGC after every collection; Stop ends it.
type Floor struct {
	floor   uint64
	base    int
	stopped atomic.Bool
	set     atomic.Int64 // the GOGC last set
	sample  []metrics.Sample
}

// Start keeps the heap goal at or above floor bytes, with base (GOGC's
// value, normally 100) applying above it.
func Start(floor uint64, base int) *Floor {
	f := &Floor{floor: floor, base: base, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	f.adjust()
	f.arm()
	return f
}

// Stop restores the base GOGC.
func (f *Floor) Stop() {
	f.stopped.Store(true)
	debug.SetGCPercent(f.base)
}

// GOGC is the value in force.
func (f *Floor) GOGC() int { return int(f.set.Load()) }

// arm schedules adjust after the next collection: a finalizer runs once
// the sentinel is found unreachable, that is after a cycle.
func (f *Floor) arm() {
	s := new(sentinel)
	runtime.SetFinalizer(s, func(*sentinel) {
		if f.stopped.Load() {
			return
		}
		f.adjust()
		f.arm()
	})
}

// sentinel is a pointer-sized object whose finalizer marks a collection
// (a zero-sized one may not be allocated).
type sentinel struct{ _ *int }

// adjust sets GOGC so that the next goal is at least the floor.
func (f *Floor) adjust() {
	metrics.Read(f.sample)
	var v [3]uint64
	for i, s := range f.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	p := Percent(v[0], v[0]+v[1]+v[2], f.floor, f.base)
	if int64(p) != f.set.Load() {
		debug.SetGCPercent(p)
		f.set.Store(int64(p))
	}
}

// Percent is the GOGC giving a heap goal of the floor, or base when that
// gives more. The runtime's goal is live + (live + stacks + globals) ×
// GOGC/100; scan is that sum.
func Percent(live, scan, floor uint64, base int) int {
	scan = max(scan, live, 1<<20)
	if live+scan*uint64(base)/100 >= floor {
		return base
	}
	return int((floor - live) * 100 / scan)
}
