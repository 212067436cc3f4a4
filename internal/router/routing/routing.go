// Package routing matches a request against ModelRoutes exactly as
// upstream does: routes for the model (by modelName, else by LoRA adapter
// name) oldest first, the first rule whose body model, headers (all) and
// URI match, then a weighted random target.
package routing

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

// Input is what matching reads from a request.
type Input struct {
	Model   string
	Path    string
	Headers http.Header
}

// Target is the match result.
type Target struct {
	Route *networkingv1alpha1.ModelRoute
	// RuleName is the matched rule's name (may be empty).
	RuleName string
	// ModelServer is namespace/name of the chosen ModelServer, or empty.
	ModelServer string
	// ExternalProvider is namespace/name of an ExternalModelProvider target.
	ExternalProvider string
	// LoRA is true when the model named a LoRA adapter.
	LoRA bool
}

// Errors of matching.
var (
	ErrNoRoute  = errors.New("no ModelRoute serves this model")
	ErrNoRule   = errors.New("no rule of the model's routes matched the request")
	ErrNoTarget = errors.New("the matched rule has no target with a positive weight")
)

// Matcher caches compiled regexes; it is safe for concurrent use.
type Matcher struct {
	mu      sync.RWMutex
	regexes map[string]*regexp.Regexp
}

// NewMatcher returns a Matcher.
func NewMatcher() *Matcher { return &Matcher{regexes: map[string]*regexp.Regexp{}} }

func (m *Matcher) regex(p string) (*regexp.Regexp, error) {
	m.mu.RLock()
	re, ok := m.regexes[p]
	m.mu.RUnlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	if len(m.regexes) > 4096 { // bound the cache; routes change rarely
		clear(m.regexes)
	}
	m.regexes[p] = re
	m.mu.Unlock()
	return re, nil
}

// StringMatch reports whether v satisfies sm (exact, then prefix, then
// regex; a nil or empty match accepts anything). An invalid regex never
// matches.
func (m *Matcher) StringMatch(sm *networkingv1alpha1.StringMatch, v string) bool {
	if sm == nil {
		return true
	}
	switch {
	case sm.Exact != nil:
		return v == *sm.Exact
	case sm.Prefix != nil:
		return strings.HasPrefix(v, *sm.Prefix)
	case sm.Regex != nil:
		re, err := m.regex(*sm.Regex)
		return err == nil && re.MatchString(v)
	}
	return true
}

// RuleMatches reports whether a rule's modelMatch accepts the input.
func (m *Matcher) RuleMatches(rule *networkingv1alpha1.Rule, in Input) bool {
	mm := rule.ModelMatch
	if mm == nil {
		return true
	}
	if mm.Body != nil && mm.Body.Model != nil && *mm.Body.Model != in.Model {
		return false
	}
	for name, sm := range mm.Headers {
		vals := in.Headers.Values(name)
		if len(vals) == 0 {
			return false
		}
		if !m.StringMatch(sm, vals[0]) {
			return false
		}
	}
	return m.StringMatch(mm.Uri, in.Path)
}

// Match picks a target from routes (oldest first). pick(n) returns a
// uniform integer in [0,n).
func (m *Matcher) Match(routes []*networkingv1alpha1.ModelRoute, lora bool, in Input, pick func(n int) int) (Target, error) {
	if len(routes) == 0 {
		return Target{}, ErrNoRoute
	}
	for _, r := range routes {
		for _, rule := range r.Spec.Rules {
			if rule == nil || !m.RuleMatches(rule, in) {
				continue
			}
			tm, err := weighted(rule.TargetModels, pick)
			if err != nil {
				return Target{}, fmt.Errorf("route %s/%s rule %q: %w", r.Namespace, r.Name, rule.Name, err)
			}
			t := Target{Route: r, RuleName: rule.Name, LoRA: lora}
			if tm.ModelServerName != "" {
				t.ModelServer = r.Namespace + "/" + tm.ModelServerName
			} else {
				t.ExternalProvider = r.Namespace + "/" + tm.ExternalModelProviderName
			}
			return t, nil
		}
	}
	return Target{}, ErrNoRule
}

// weighted picks a target by weight; an unset weight counts as 100 (the
// CRD default), so all-unset means an even split.
func weighted(ts []*networkingv1alpha1.TargetModel, pick func(n int) int) (*networkingv1alpha1.TargetModel, error) {
	total := 0
	for _, t := range ts {
		if t != nil {
			total += weight(t)
		}
	}
	if total <= 0 {
		return nil, ErrNoTarget
	}
	x := pick(total)
	for _, t := range ts {
		if t == nil {
			continue
		}
		x -= weight(t)
		if x < 0 {
			return t, nil
		}
	}
	return nil, ErrNoTarget
}

func weight(t *networkingv1alpha1.TargetModel) int {
	if t.Weight == nil {
		return 100
	}
	return int(*t.Weight)
}
