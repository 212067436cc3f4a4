package framework

import "time"

// Staleness of scraped samples, in scrape intervals: a sample is fully
// trusted up to FreshFor intervals after it was taken (one interval plus
// the time a scrape may take) and not at all from StaleAfter on.
const (
	FreshFor   = 1.5
	StaleAfter = 5.0
)

// Since is what this router did to the endpoint since its last scrape:
// requests sent and requests that ended. A new endpoint object keeps its
// predecessor's counters, so the differences are never negative; a
// sample older than the counters (none taken yet) counts everything.
func (e *Endpoint) Since() (sent, done float64) {
	m := e.Metrics
	if e.Sent >= m.Sent {
		sent = float64(e.Sent - m.Sent)
	}
	if e.Done >= m.Done {
		done = float64(e.Done - m.Done)
	}
	return sent, done
}

// Freshness is the weight in [0,1] of a sample taken at `at` with scrapes
// every interval: 1 up to FreshFor intervals, falling linearly to 0 at
// StaleAfter intervals. A sample without a time or interval (built by hand)
// is fresh; one never taken (zero time with an interval) has weight 0.
func Freshness(at time.Time, interval time.Duration, now time.Time) float64 {
	if interval <= 0 {
		return 1
	}
	if at.IsZero() {
		return 0
	}
	age := float64(now.Sub(at)) / float64(interval)
	switch {
	case age <= FreshFor:
		return 1
	case age >= StaleAfter:
		return 0
	}
	return (StaleAfter - age) / (StaleAfter - FreshFor)
}

// Load is the engine's requests (running and waiting) now as best known:
// the scraped count plus what this router sent since, minus what ended
// since, never below 0.
func (e *Endpoint) Load() float64 {
	s, d := e.Since()
	return max(0, e.Metrics.Running+e.Metrics.Waiting+s-d)
}
