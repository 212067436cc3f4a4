package autoscalebench

import (
	"slices"
	"sort"
	"time"
)

// Request is one replayed request as the client saw it.
type Request struct {
	// ID is the X-Request-Id sent, which the router's access log carries.
	ID string
	// Sent is the send time; Offset the same from the trace's start.
	Sent   time.Time
	Offset time.Duration
	// TTFT is the time to the first content token (0 if none came).
	TTFT time.Duration
	// Latency is the time to the end of the stream.
	Latency time.Duration
	Status  int
	// OK: status 200, a first token and the stream's [DONE].
	OK  bool
	Err string
	// ColdStart: sent while the model had no ready pod and answered by
	// the pod that started for it (set by ColdStarts).
	ColdStart bool
}

// FirstToken is when the first token reached the client.
func (r Request) FirstToken() time.Time { return r.Sent.Add(r.TTFT) }

// Pod is one engine pod's life as watched on the API server.
type Pod struct {
	Name string
	// Created is metadata.creationTimestamp (second precision); Seen the
	// watch's first sight of it (millisecond precision).
	Created, Seen time.Time
	// Running: a container first reported running; Ready: the Ready
	// condition first true; Terminating: the deletion timestamp first
	// seen; Deleted: the object gone. Zero when it did not happen.
	Running, Ready, Terminating, Deleted time.Time
}

// Start is when the pod began to hold a GPU: the earlier of its creation
// timestamp and the watch's first sight.
func (p Pod) Start() time.Time {
	if p.Created.IsZero() || (!p.Seen.IsZero() && p.Seen.Before(p.Created)) {
		return p.Seen
	}
	return p.Created
}

// ReadyAt reports whether the pod was ready (and not terminating) at t.
func (p Pod) ReadyAt(t time.Time) bool {
	if p.Ready.IsZero() || t.Before(p.Ready) {
		return false
	}
	end := p.Terminating
	if end.IsZero() {
		end = p.Deleted
	}
	return end.IsZero() || t.Before(end)
}

// ExistsAt reports whether the pod held a GPU at t.
func (p Pod) ExistsAt(t time.Time) bool {
	s := p.Start()
	return !s.IsZero() && !t.Before(s) && (p.Deleted.IsZero() || t.Before(p.Deleted))
}

// ReplicaChange is an observed change of the ModelServing's spec.replicas.
type ReplicaChange struct {
	At       time.Time
	Replicas int32
}

// ReplicaSeconds integrates the pods alive (created, not yet deleted)
// over [from, to): the GPU time paid, start-up and drain included.
func ReplicaSeconds(pods []Pod, from, to time.Time) float64 {
	sum := 0.0
	for _, p := range pods {
		s, e := p.Start(), p.Deleted
		if s.IsZero() {
			continue
		}
		if e.IsZero() || e.After(to) {
			e = to
		}
		if s.Before(from) {
			s = from
		}
		if e.After(s) {
			sum += e.Sub(s).Seconds()
		}
	}
	return sum
}

// ReadyCount is how many pods were ready at t.
func ReadyCount(pods []Pod, t time.Time) int {
	n := 0
	for _, p := range pods {
		if p.ReadyAt(t) {
			n++
		}
	}
	return n
}

// Percentile is the nearest-rank q-quantile (0 < q ≤ 1) of ds.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Summary is what one configuration measured over its requests.
type Summary struct {
	Requests, Failed int
	// P50, P90, P99 of TTFT over the answered requests.
	P50, P90, P99 time.Duration
	// WithinSLO: share of all requests answered with TTFT ≤ SLO;
	// WithinSLOWarm: the same without the cold-start requests.
	WithinSLO, WithinSLOWarm float64
	ColdRequests             int
}

// Summarize computes the summary; a failed request counts as outside
// the SLO.
func Summarize(reqs []Request, slo time.Duration) Summary {
	var s Summary
	var ttfts []time.Duration
	within, warm, warmWithin := 0, 0, 0
	for _, r := range reqs {
		s.Requests++
		if !r.OK {
			s.Failed++
		} else {
			ttfts = append(ttfts, r.TTFT)
		}
		ok := r.OK && r.TTFT <= slo
		if ok {
			within++
		}
		if r.ColdStart {
			s.ColdRequests++
			continue
		}
		warm++
		if ok {
			warmWithin++
		}
	}
	s.P50, s.P90, s.P99 = Percentile(ttfts, 0.5), Percentile(ttfts, 0.9), Percentile(ttfts, 0.99)
	if s.Requests > 0 {
		s.WithinSLO = float64(within) / float64(s.Requests)
	}
	if warm > 0 {
		s.WithinSLOWarm = float64(warmWithin) / float64(warm)
	}
	return s
}

// ColdStart is one wake-up from no ready pod, split into phases that add
// up to Total: from the first held request to its first token.
type ColdStart struct {
	// FirstHeld is the send time of the first request that found no
	// ready pod; Offset the same from the trace's start.
	FirstHeld time.Time
	Offset    time.Duration
	// Held is how many requests were sent before the first pod was ready.
	Held int
	// Decision: first held request → spec.replicas raised from 0.
	// PodStart: → the engine's container running.
	// EngineReady: → the pod's Ready condition.
	// Release: → the first held request's first token at the client.
	Decision, PodStart, EngineReady, Release, Total time.Duration
	// RouterRelease and EngineFirstToken split Release, when the router's
	// access log has the request: Ready → the router let it go (negative
	// if the router saw the pod ready before this watch did), then → its
	// first token at the client (the engine's queue and prefill).
	RouterRelease, EngineFirstToken time.Duration
	SplitKnown                      bool
	// Request is the first held request's ID.
	Request string
	// Pod is the pod that served it.
	Pod     string
	readyAt time.Time
}

// Overhead is the time the cold start adds beyond the engine's own
// start-up: the scale decision and the router's release.
func (c ColdStart) Overhead() time.Duration { return c.Decision + c.Release }

// ColdStarts finds the cold starts in a run: requests sent while no pod
// was ready and answered after the next pod became ready. It marks their
// requests (ColdStart) and splits each wake-up into phases. reqs must be in
// send order.
func ColdStarts(reqs []Request, pods []Pod, changes []ReplicaChange) []ColdStart {
	var out []ColdStart
	readyTimes := make([]time.Time, 0, len(pods))
	for _, p := range pods {
		if !p.Ready.IsZero() {
			readyTimes = append(readyTimes, p.Ready)
		}
	}
	sort.Slice(readyTimes, func(i, j int) bool { return readyTimes[i].Before(readyTimes[j]) })
	nextReady := func(t time.Time) (time.Time, bool) {
		for _, rt := range readyTimes {
			if !rt.Before(t) {
				return rt, true
			}
		}
		return time.Time{}, false
	}
	for i := 0; i < len(reqs); i++ {
		r := reqs[i]
		if ReadyCount(pods, r.Sent) > 0 {
			continue
		}
		ready, ok := nextReady(r.Sent)
		if !ok || !r.OK || r.FirstToken().Before(ready) {
			// Served by a pod still draining, or never served.
			continue
		}
		c := ColdStart{FirstHeld: r.Sent, Offset: r.Offset}
		j := i
		for ; j < len(reqs) && reqs[j].Sent.Before(ready); j++ {
			if ReadyCount(pods, reqs[j].Sent) == 0 && (!reqs[j].OK || !reqs[j].FirstToken().Before(ready)) {
				reqs[j].ColdStart = true
				c.Held++
			}
		}
		decided := r.Sent
		prev := int32(-1)
		for _, ch := range changes {
			if !ch.At.Before(r.Sent) && ch.Replicas > 0 && prev == 0 {
				decided = ch.At
				break
			}
			prev = ch.Replicas
		}
		var pod Pod
		for _, p := range pods {
			if p.Ready.Equal(ready) {
				pod = p
				break
			}
		}
		running := pod.Running
		if running.IsZero() {
			running = ready
		}
		if decided.After(running) {
			decided = running
		}
		c.Pod = pod.Name
		c.Request = r.ID
		c.readyAt = ready
		c.Decision = decided.Sub(r.Sent)
		c.PodStart = running.Sub(decided)
		c.EngineReady = ready.Sub(running)
		c.Release = r.FirstToken().Sub(ready)
		c.Total = r.FirstToken().Sub(r.Sent)
		out = append(out, c)
		i = j - 1
	}
	return out
}

// BurstAbsorption is how long after the burst's start requests kept
// missing the SLO: the send offset of the last request sent during the
// burst whose TTFT exceeded the SLO (or that failed), minus the burst's
// start; 0 when none did. late counts those requests.
func BurstAbsorption(reqs []Request, from, to, slo time.Duration) (absorbed time.Duration, late int) {
	for _, r := range reqs {
		if r.Offset < from || r.Offset >= to {
			continue
		}
		if !r.OK || r.TTFT > slo {
			late++
			absorbed = max(absorbed, r.Offset-from)
		}
	}
	return absorbed, late
}
