package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/framework"
)

// DefaultTopN is how many candidates the director may fail over across.
const DefaultTopN = 5

type instance struct {
	plugin framework.Plugin
	args   []byte
}

// Build instantiates the plugins of cfg (resolve args, instantiate, then
// assemble the aggregated profile and the PD profiles from the shared
// instances) and fails on any unknown
// plugin, duplicate, bad weight or bad args. Plugins whose type and args are
// unchanged from prev are reused, so stateful plugins (the prefix index)
// survive a configuration reload.
func Build(reg *Registry, cfg config.SchedulerConfig, h framework.Handle, prev *Scheduler) (*Scheduler, error) {
	args := map[string][]byte{}
	for _, pc := range cfg.PluginConfig {
		if _, ok := reg.factory(pc.Name); !ok {
			return nil, fmt.Errorf("pluginConfig: unknown plugin %q (known: %s)", pc.Name, strings.Join(reg.Types(), ", "))
		}
		if _, dup := args[pc.Name]; dup {
			return nil, fmt.Errorf("pluginConfig: plugin %q configured twice", pc.Name)
		}
		args[pc.Name] = pc.Args
	}

	insts := map[string]instance{}
	get := func(name string) (framework.Plugin, error) {
		if in, ok := insts[name]; ok {
			return in.plugin, nil
		}
		f, ok := reg.factory(name)
		if !ok {
			return nil, fmt.Errorf("unknown plugin %q (known: %s)", name, strings.Join(reg.Types(), ", "))
		}
		a := args[name]
		if prev != nil {
			if old, ok := prev.instances[name]; ok && bytes.Equal(old.args, a) {
				insts[name] = old
				return old.plugin, nil
			}
		}
		var dec *json.Decoder
		if len(a) > 0 && string(a) != "null" {
			dec = json.NewDecoder(bytes.NewReader(a))
			dec.DisallowUnknownFields()
		}
		p, err := f(dec, h)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: invalid args: %w", name, err)
		}
		insts[name] = instance{plugin: p, args: a}
		return p, nil
	}
	// Stage 1: every configured plugin must instantiate, enabled or not.
	for _, pc := range cfg.PluginConfig {
		if _, err := get(pc.Name); err != nil {
			return nil, fmt.Errorf("instantiate: %w", err)
		}
	}

	s, err := assemble(cfg.Plugins, get)
	if err != nil {
		return nil, err
	}
	s.topN = cfg.TopN
	if s.topN == 0 {
		s.topN = DefaultTopN
	}
	s.instances = insts
	for _, in := range insts {
		if ob, ok := in.plugin.(framework.EndpointObserver); ok {
			s.observers = append(s.observers, ob)
		}
		if w, ok := in.plugin.(framework.EndpointWatcher); ok {
			s.watchers = append(s.watchers, w)
		}
	}

	// Stage 5: the PD profiles share the instances; a phase without a
	// profile is scheduled like an aggregated request.
	s.prefill, s.decode = s, s
	if p := cfg.Profiles; p != nil {
		for _, ph := range []struct {
			name string
			prof *config.Profile
			dst  **Scheduler
		}{{"prefill", p.Prefill, &s.prefill}, {"decode", p.Decode, &s.decode}} {
			if ph.prof == nil {
				continue
			}
			ps, err := assemble(ph.prof.Plugins, get)
			if err != nil {
				return nil, fmt.Errorf("profiles.%s: %w", ph.name, err)
			}
			ps.topN, ps.instances, ps.prefill, ps.decode = s.topN, insts, ps, ps
			*ph.dst = ps
		}
	}
	// Both pods of a pair end up holding the prompt's KV, so each hook of
	// either phase hears of both.
	for _, h := range append(slices.Clone(s.prefill.pre), s.decode.pre...) {
		if !slices.Contains(s.pdPre, h) {
			s.pdPre = append(s.pdPre, h)
		}
	}
	if d := cfg.PDDecider; d != nil && d.MinUncachedTokens > 0 {
		for _, h := range s.pdPre {
			if e, ok := h.(framework.PrefixEstimator); ok {
				s.estimator = e
				break
			}
		}
		for _, name := range slices.Sorted(maps.Keys(insts)) {
			if c, ok := insts[name].plugin.(framework.CachedTokensCounter); ok {
				s.cachedTokens = c
				break
			}
		}
		if s.estimator == nil && s.cachedTokens == nil {
			return nil, fmt.Errorf("pdDecider: no plugin of the prefill or decode profile estimates cached prefixes (enable prefix-cache or kvcache-aware in one)")
		}
		s.minUncached = d.MinUncachedTokens
	}
	return s, nil
}

// assemble builds one profile from instantiated plugins: filters and
// scorers in configured order, their request hooks, and the picker.
func assemble(ps config.Plugins, get func(string) (framework.Plugin, error)) (*Scheduler, error) {
	s := &Scheduler{}
	disabled := func(set config.PluginSet) map[string]bool {
		m := map[string]bool{}
		for _, d := range set.Disabled {
			m[d.Name] = true
		}
		return m
	}

	fdis := disabled(ps.Filter)
	seen := map[string]bool{}
	for _, ref := range ps.Filter.Enabled {
		if fdis[ref.Name] {
			continue
		}
		if seen[ref.Name] {
			return nil, fmt.Errorf("filters: plugin %q enabled twice", ref.Name)
		}
		seen[ref.Name] = true
		if ref.Weight != nil {
			return nil, fmt.Errorf("filters: plugin %q: filters take no weight", ref.Name)
		}
		p, err := get(ref.Name)
		if err != nil {
			return nil, fmt.Errorf("filters: %w", err)
		}
		f, ok := p.(framework.Filter)
		if !ok {
			return nil, fmt.Errorf("filters: plugin %q is not a filter", ref.Name)
		}
		s.filters = append(s.filters, namedFilter{name: ref.Name, f: f})
	}

	// Scorers in configured order (a slice, never a map).
	sdis := disabled(ps.Score)
	seen = map[string]bool{}
	for _, ref := range ps.Score.Enabled {
		if sdis[ref.Name] {
			continue
		}
		if seen[ref.Name] {
			return nil, fmt.Errorf("scorers: plugin %q enabled twice", ref.Name)
		}
		seen[ref.Name] = true
		w := 1.0
		if ref.Weight != nil {
			w = *ref.Weight
		}
		if w < 0 {
			return nil, fmt.Errorf("scorers: plugin %q: weight %v must be >= 0", ref.Name, w)
		}
		p, err := get(ref.Name)
		if err != nil {
			return nil, fmt.Errorf("scorers: %w", err)
		}
		sc, ok := p.(framework.Scorer)
		if !ok {
			return nil, fmt.Errorf("scorers: plugin %q is not a scorer", ref.Name)
		}
		s.scorers = append(s.scorers, namedScorer{name: ref.Name, s: sc, w: w})
		s.weights = append(s.weights, framework.WeightedName{Name: ref.Name, Weight: w})
	}
	if seen["random"] && len(s.scorers) > 1 {
		return nil, fmt.Errorf("scorers: random is a baseline and cannot be combined with other scorers")
	}

	// Hooks in filter then scorer order.
	for _, f := range s.filters {
		if pr, ok := f.f.(framework.PreRequest); ok {
			s.pre = append(s.pre, pr)
		}
	}
	for _, sc := range s.scorers {
		if pr, ok := sc.s.(framework.PreRequest); ok && !slices.Contains(s.pre, pr) {
			s.pre = append(s.pre, pr)
		}
	}
	// Near-ties are a share of the largest possible total. The baselines
	// keep exact ties only: random must stay random.
	total, baseline := 0.0, true
	for _, sc := range s.scorers {
		total += sc.w
		baseline = baseline && (sc.name == "random" || sc.name == "round-robin")
	}
	near := NearTie * total
	if baseline && len(s.scorers) > 0 {
		near = 0
	}
	s.picker = MaxScorePicker{Near: near}
	return s, nil
}
