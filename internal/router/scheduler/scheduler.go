// Package scheduler runs the configured plugins for one request: filters,
// then weighted scorers, then a picker, and returns the ranking with every
// plugin's score per candidate.
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kthena/kthena/internal/router/framework"
)

// ErrNoEndpoints is returned when filters leave nothing to schedule on.
var ErrNoEndpoints = errors.New("no endpoint passed the filters")

// Recorder receives per-plugin latencies.
type Recorder interface {
	ObservePlugin(plugin, kind string, d time.Duration)
}

type namedFilter struct {
	name string
	f    framework.Filter
}

type namedScorer struct {
	name string
	s    framework.Scorer
	w    float64
}

// Scheduler is an immutable, built plugin profile. It is safe for
// concurrent use; plugins synchronise their own state.
type Scheduler struct {
	filters   []namedFilter
	scorers   []namedScorer
	weights   []framework.WeightedName
	picker    framework.Picker
	pre       []framework.PreRequest
	observers []framework.EndpointObserver
	watchers  []framework.EndpointWatcher
	topN      int
	instances map[string]instance

	// prefill and decode are the PD phases' profiles (s itself when not
	// configured); pdPre are the hooks of both, told of both pods of a pair.
	prefill, decode *Scheduler
	pdPre           []framework.PreRequest
	// estimator and minUncached are the PD decider (nil: always
	// disaggregate).
	estimator    framework.PrefixEstimator
	cachedTokens framework.CachedTokensCounter
	minUncached  int
}

// Prefill is the profile that ranks prefill pods.
func (s *Scheduler) Prefill() *Scheduler { return s.prefill }

// Decode is the profile that ranks decode pods.
func (s *Scheduler) Decode() *Scheduler { return s.decode }

// PrePair tells the hooks of both PD profiles that req is about to be
// served by this prefill and decode pod (prefill may be nil when the
// decider skipped it).
func (s *Scheduler) PrePair(ctx context.Context, req *framework.Request, prefill, decode *framework.Endpoint) {
	for _, p := range s.pdPre {
		if prefill != nil {
			p.PreRequest(ctx, req, prefill)
		}
		p.PreRequest(ctx, req, decode)
	}
}

// Decider returns the prefix estimator and the threshold of conditional
// disaggregation, or nil when every request is disaggregated.
func (s *Scheduler) Decider() (framework.PrefixEstimator, int) { return s.estimator, s.minUncached }

// CachedTokens is the decider's exact count of cached prompt tokens, when a
// plugin (kvcache-aware) has one; nil otherwise.
func (s *Scheduler) CachedTokens() framework.CachedTokensCounter { return s.cachedTokens }

// TopN is how many ranked candidates Schedule returns at most.
func (s *Scheduler) TopN() int { return s.topN }

// Schedule ranks eps for req and keeps the best TopN. eps may be reordered
// and reused.
func (s *Scheduler) Schedule(ctx context.Context, req *framework.Request, eps []*framework.Endpoint, rec Recorder) (*framework.Result, error) {
	return s.schedule(ctx, req, eps, rec, s.topN)
}

// Rank is Schedule without the TopN bound: every endpoint that passed the
// filters, best first (PD pairing looks for the best pod of each group).
func (s *Scheduler) Rank(ctx context.Context, req *framework.Request, eps []*framework.Endpoint, rec Recorder) (*framework.Result, error) {
	return s.schedule(ctx, req, eps, rec, len(eps))
}

func (s *Scheduler) schedule(ctx context.Context, req *framework.Request, eps []*framework.Endpoint, rec Recorder, topN int) (*framework.Result, error) {
	res := &framework.Result{Considered: len(eps), Scorers: s.weights}
	if len(eps) == 0 {
		return res, ErrNoEndpoints
	}
	if len(s.filters) > 0 {
		res.Filtered = make([]framework.FilterOutcome, 0, len(s.filters))
	}
	for _, f := range s.filters {
		start := time.Now()
		before := len(eps)
		eps = f.f.Filter(ctx, req, eps)
		observe(rec, f.name, "filter", start)
		res.Filtered = append(res.Filtered, framework.FilterOutcome{Name: f.name, Removed: before - len(eps)})
		if len(eps) == 0 {
			return res, ErrNoEndpoints
		}
	}
	n, k := len(eps), len(s.scorers)
	cands := make([]framework.Candidate, n)
	// The candidates' scores and the scorers' buffer in one allocation.
	flat := make([]float64, n*k+n)
	for i, ep := range eps {
		cands[i] = framework.Candidate{Endpoint: ep, Scores: flat[i*k : (i+1)*k : (i+1)*k]}
	}
	if k > 0 {
		buf := flat[n*k:]
		for j, sc := range s.scorers {
			clear(buf)
			start := time.Now()
			sc.s.Score(ctx, req, eps, buf)
			observe(rec, sc.name, "score", start)
			for i, v := range buf {
				if v != v || v < 0 { // NaN or negative
					v = 0
				} else if v > 1 {
					v = 1
				}
				cands[i].Scores[j] = v
				cands[i].Total += sc.w * v
			}
		}
	}
	start := time.Now()
	ranked := s.picker.Pick(ctx, req, cands)
	observe(rec, s.picker.Type(), "pick", start)
	if len(ranked) > topN {
		ranked = ranked[:topN]
	}
	res.Ranked = ranked
	return res, nil
}

// PreRequest tells the hooks that req is about to go to ep.
func (s *Scheduler) PreRequest(ctx context.Context, req *framework.Request, ep *framework.Endpoint) {
	for _, p := range s.pre {
		p.PreRequest(ctx, req, ep)
	}
}

// EndpointRemoved tells observers that an endpoint left.
func (s *Scheduler) EndpointRemoved(key string) {
	for _, o := range s.observers {
		o.EndpointRemoved(key)
	}
}

// Watches reports whether some plugin wants EndpointsChanged.
func (s *Scheduler) Watches() bool { return len(s.watchers) > 0 }

// EndpointsChanged shows watchers every endpoint.
func (s *Scheduler) EndpointsChanged(eps []*framework.Endpoint) {
	for _, w := range s.watchers {
		w.EndpointsChanged(eps)
	}
}

func observe(rec Recorder, name, kind string, start time.Time) {
	if rec != nil {
		rec.ObservePlugin(name, kind, time.Since(start))
	}
}

// MaxScorePicker orders candidates by total score. The best candidates
// whose totals are within Near of the top are a near-tie, broken by the
// power of two choices: two of them drawn at random, the one with fewer
// requests in flight from this router goes first (a fixed order, or the
// first of equal stale scores, would send a burst to one endpoint). The
// rest follow by total, equal totals in random order.
type MaxScorePicker struct {
	// Near is the tolerance of a near-tie, in units of total score.
	Near float64
}

// NearTie is the near-tie tolerance per unit of scorer weight: totals
// within 1 % of the largest possible total are a tie.
const NearTie = 0.01

// Type implements framework.Plugin.
func (MaxScorePicker) Type() string { return "max-score" }

// Pick implements framework.Picker.
func (p MaxScorePicker) Pick(_ context.Context, _ *framework.Request, c []framework.Candidate) []framework.Candidate {
	// Shuffle first so the stable sort breaks ties randomly.
	for i := len(c) - 1; i > 0; i-- {
		j := rand.IntN(i + 1)
		c[i], c[j] = c[j], c[i]
	}
	slices.SortStableFunc(c, func(a, b framework.Candidate) int { return cmp.Compare(b.Total, a.Total) })
	n := 1
	for n < len(c) && c[n].Total >= c[0].Total-p.Near {
		n++
	}
	if n > 1 {
		a := rand.IntN(n)
		b := rand.IntN(n - 1)
		if b >= a {
			b++
		}
		if better(c[b], c[a]) {
			a = b
		}
		// Move the winner to the front, keeping the others' order.
		w := c[a]
		copy(c[1:a+1], c[:a])
		c[0] = w
	}
	return c
}

// better is the power-of-two-choices comparison: fewer requests in flight,
// then the higher total.
func better(x, y framework.Candidate) bool {
	if x.Endpoint.InFlight != y.Endpoint.InFlight {
		return x.Endpoint.InFlight < y.Endpoint.InFlight
	}
	return x.Total > y.Total
}

// Plugins returns every instantiated plugin.
func (s *Scheduler) Plugins() []framework.Plugin {
	out := make([]framework.Plugin, 0, len(s.instances))
	for _, in := range s.instances {
		out = append(out, in.plugin)
	}
	return out
}
