package autoscaling

import "time"

// sample is one value at one time.
type sample struct {
	at time.Time
	v  int32
}

// history is a time-ordered list of values, trimmed to a horizon. Lists stay
// short (one entry per period over at most 30 minutes), so a linear scan is
// simpler and as fast as a sliding-window structure.
type history []sample

func (h *history) add(at time.Time, v int32) { *h = append(*h, sample{at, v}) }

// trim drops the values older than since.
func (h *history) trim(since time.Time) {
	i := 0
	for i < len(*h) && (*h)[i].at.Before(since) {
		i++
	}
	*h = append((*h)[:0], (*h)[i:]...)
}

// minSince is the smallest value recorded at or after since.
func (h history) minSince(since time.Time) (int32, bool) {
	var out int32
	found := false
	for _, r := range h {
		if !r.at.Before(since) && (!found || r.v < out) {
			out, found = r.v, true
		}
	}
	return out, found
}

// maxSince is the largest value recorded at or after since.
func (h history) maxSince(since time.Time) (int32, bool) {
	var out int32
	found := false
	for _, r := range h {
		if !r.at.Before(since) && (!found || r.v > out) {
			out, found = r.v, true
		}
	}
	return out, found
}
