// Package config is the router configuration file, in upstream's format
// (`scheduler.pluginConfig`, `scheduler.plugins`), decoded strictly: unknown
// fields fail instead of being ignored.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// RouterConfiguration is the whole file.
type RouterConfiguration struct {
	Scheduler SchedulerConfig `json:"scheduler"`
	// Auth turns on JWT authentication when jwksUri is set (upstream), and
	// per-model authorization rules (Kthena extension).
	Auth *AuthConfig `json:"auth,omitempty"`
	// Tokenizer turns on real token counting of prompts (Kthena extension).
	Tokenizer *TokenizerConfig `json:"tokenizer,omitempty"`
	// SessionSticky is where the bindings of ModelServers'
	// trafficPolicy.sessionSticky live (default: in this router's memory).
	SessionSticky *SessionStoreConfig `json:"sessionSticky,omitempty"`
	// ColdStart bounds how requests are held while a ModelServer has no
	// ready pod (Kthena extension; see ColdStartLimits for the defaults).
	ColdStart *ColdStartConfig `json:"coldStart,omitempty"`
	// RateLimit says how ModelRoute rate limits are keyed (Kthena
	// extension).
	RateLimit *RateLimitConfig `json:"rateLimit,omitempty"`
	// Fairness is the fair queue between tenants (Kthena extension).
	Fairness *FairnessConfig `json:"fairness,omitempty"`
	// Migration continues a stream that failed after its first byte on
	// another pod (Kthena extension; see MigrationLimits for the
	// defaults).
	Migration *MigrationConfig `json:"migration,omitempty"`
}

// MigrationConfig bounds mid-stream migration; unset fields take the
// defaults.
type MigrationConfig struct {
	// MaxAttempts is how many continuations one request may send after
	// its stream failed (default 2); 0 turns migration off (a failed
	// stream ends with an SSE error event).
	MaxAttempts *int `json:"maxAttempts,omitempty"`
	// IdleTimeout migrates a stream whose engine sends nothing for this
	// long between two chunks (default 0: off; the router's
	// --stream-idle-timeout still aborts).
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
}

// DefaultMigrationAttempts is how many continuations a failed stream
// may use by default.
const DefaultMigrationAttempts = 2

// MigrationLimits returns the migration bounds with the defaults filled.
func (c *RouterConfiguration) MigrationLimits() (maxAttempts int, idle time.Duration) {
	maxAttempts = DefaultMigrationAttempts
	if m := c.Migration; m != nil {
		if m.MaxAttempts != nil {
			maxAttempts = *m.MaxAttempts
		}
		if m.IdleTimeout != nil {
			idle = m.IdleTimeout.Duration
		}
	}
	return maxAttempts, idle
}

// FairnessConfig turns the fair queue on and bounds it.
type FairnessConfig struct {
	// Enabled queues requests of a saturated ModelServer and admits them
	// by tenant in virtual-token order (default off).
	Enabled bool `json:"enabled"`
	// MaxQueued bounds the requests waiting per ModelServer (default
	// 1000), MaxQueuedPerTenant those of one tenant (default 200).
	MaxQueued          *int `json:"maxQueued,omitempty"`
	MaxQueuedPerTenant *int `json:"maxQueuedPerTenant,omitempty"`
	// QueueTimeout is the longest wait (default 60s, upstream's).
	QueueTimeout *metav1.Duration `json:"queueTimeout,omitempty"`
	// InputWeight and OutputWeight weigh tokens (default 1 and 2, as VTC).
	InputWeight  *float64 `json:"inputWeight,omitempty"`
	OutputWeight *float64 `json:"outputWeight,omitempty"`
	// TenantWeights give tenants a larger (or smaller) share than 1.
	TenantWeights map[string]float64 `json:"tenantWeights,omitempty"`
	// MaxInFlightPerPod is how many requests one pod takes before the
	// ModelServer counts as saturated; 0 (default) reads it from the
	// engines: saturated when no pod reports an empty queue.
	MaxInFlightPerPod int `json:"maxInFlightPerPod,omitempty"`
	// PriorityHeader carries a request's priority class, an integer,
	// higher first (default X-Kthena-Priority).
	PriorityHeader string `json:"priorityHeader,omitempty"`
}

// Rate limit scopes.
const (
	RateLimitScopeModel  = "model"
	RateLimitScopeTenant = "tenant"
)

// RateLimitConfig is how ModelRoute.spec.rateLimit is applied.
type RateLimitConfig struct {
	// Scope is model (upstream: one bucket per ModelRoute, default) or
	// tenant (one bucket per ModelRoute and caller: each tenant gets the
	// route's limit; callers without identity share one).
	Scope string `json:"scope,omitempty"`
}

// ColdStartConfig bounds request holding; unset fields take the defaults.
type ColdStartConfig struct {
	// MaxHeldRequests is the most requests held per ModelServer (beyond:
	// 429); 0 turns holding off (503 at once).
	MaxHeldRequests *int `json:"maxHeldRequests,omitempty"`
	// HoldTimeout is how long one request waits for a ready pod (beyond:
	// 504).
	HoldTimeout *metav1.Duration `json:"holdTimeout,omitempty"`
	// WakeInterval is how often the scale-from-zero request is repeated
	// while requests are held.
	WakeInterval *metav1.Duration `json:"wakeInterval,omitempty"`
	// ReleasePerPod is how many held requests a pod that turns ready is
	// given at first; more follow as requests finish, as more pods turn
	// ready, or as the engine shows room (see docs/router.md). 0 releases
	// every held request at once.
	ReleasePerPod *int `json:"releasePerPod,omitempty"`
}

// Cold start defaults: long enough for an engine to load its weights, and
// a bound that keeps a burst at zero from exhausting the router.
const (
	DefaultMaxHeldRequests = 1000
	DefaultHoldTimeout     = 5 * time.Minute
	DefaultWakeInterval    = time.Second
	// DefaultReleasePerPod is a small engine's batch (the simulator's and
	// a small GPU's): a larger engine shows its room within a few scrapes.
	DefaultReleasePerPod = 8
)

// ColdStartReleasePerPod returns coldStart.releasePerPod or its default.
func (c *RouterConfiguration) ColdStartReleasePerPod() int {
	if cs := c.ColdStart; cs != nil && cs.ReleasePerPod != nil {
		return *cs.ReleasePerPod
	}
	return DefaultReleasePerPod
}

// ColdStartLimits returns the configured limits with the defaults filled.
func (c *RouterConfiguration) ColdStartLimits() (maxHeld int, timeout, wake time.Duration) {
	maxHeld, timeout, wake = DefaultMaxHeldRequests, DefaultHoldTimeout, DefaultWakeInterval
	if cs := c.ColdStart; cs != nil {
		if cs.MaxHeldRequests != nil {
			maxHeld = *cs.MaxHeldRequests
		}
		if cs.HoldTimeout != nil {
			timeout = cs.HoldTimeout.Duration
		}
		if cs.WakeInterval != nil {
			wake = cs.WakeInterval.Duration
		}
	}
	return maxHeld, timeout, wake
}

// Session binding stores.
const (
	SessionStoreMemory = "memory"
	SessionStoreRedis  = "redis"
)

// SessionStoreConfig selects the session binding store.
type SessionStoreConfig struct {
	// Store is memory (per router replica) or redis (shared by replicas).
	Store string `json:"store"`
	// Redis is the shared store; its password comes from REDIS_PASSWORD.
	Redis *RedisConfig `json:"redis,omitempty"`
	// MaxEntries bounds the memory store (default 65536).
	MaxEntries int `json:"maxEntries,omitempty"`
}

// RedisConfig is a Redis server.
type RedisConfig struct {
	Address string `json:"address"`
}

// AuthConfig is upstream's JWT section plus Kthena's authorization rules.
type AuthConfig struct {
	// Issuer is the required iss claim (unset: any).
	Issuer string `json:"issuer,omitempty"`
	// Audiences: the aud claim must hold one of them (unset: any).
	Audiences []string `json:"audiences,omitempty"`
	// JWKSURI is where the issuer publishes its keys; setting it turns
	// authentication on.
	JWKSURI string `json:"jwksUri,omitempty"`
	// RefreshInterval is how often the keys are fetched again (default 1h;
	// an unknown key id also triggers a fetch, at most every 30s).
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
	// TenantClaim names the caller (default sub).
	TenantClaim string `json:"tenantClaim,omitempty"`
	// GroupsClaim holds the caller's groups, a string or a list (default
	// groups).
	GroupsClaim string `json:"groupsClaim,omitempty"`
	// TenantHeader names the caller when jwksUri is unset: the value of
	// this request header, which a gateway in front of the router must set
	// (the router trusts it).
	TenantHeader string `json:"tenantHeader,omitempty"`
	// Rules grant models to callers; with rules, what no rule grants is
	// denied. Without rules every authenticated caller may use every model.
	Rules []AuthRule `json:"rules,omitempty"`
}

// AuthRule grants the models it names (globs over request model names,
// LoRA adapters included) to the callers it names: subjects (globs),
// groups, or claim values. A rule naming no caller grants every
// authenticated one.
type AuthRule struct {
	Models   []string            `json:"models"`
	Subjects []string            `json:"subjects,omitempty"`
	Groups   []string            `json:"groups,omitempty"`
	Claims   map[string][]string `json:"claims,omitempty"`
}

// TokenizerConfig selects a BPE encoding for input-token estimates.
type TokenizerConfig struct {
	// Encoding is cl100k_base or o200k_base.
	Encoding string `json:"encoding"`
}

// SchedulerConfig lists plugins and their args.
type SchedulerConfig struct {
	PluginConfig []PluginConfig `json:"pluginConfig,omitempty"`
	Plugins      Plugins        `json:"plugins"`
	// TopN is how many ranked candidates the director may fail over across
	// (Kthena extension; default 5 as upstream).
	TopN int `json:"topN,omitempty"`
	// Profiles are the plugin sets of the two phases of prefill/decode
	// disaggregated routing (Kthena extension). A phase without a profile
	// uses Plugins, as upstream does for both.
	Profiles *PDProfiles `json:"profiles,omitempty"`
	// PDDecider decides per request whether disaggregation pays (Kthena
	// extension). Unset: every request of a PD ModelServer is prefilled
	// remotely, as upstream.
	PDDecider *PDDecider `json:"pdDecider,omitempty"`
}

// PDProfiles are the prefill and decode profiles.
type PDProfiles struct {
	Prefill *Profile `json:"prefill,omitempty"`
	Decode  *Profile `json:"decode,omitempty"`
}

// Profile is one phase's plugin set; plugin args come from pluginConfig and
// instances are shared with the other profiles.
type Profile struct {
	Plugins Plugins `json:"plugins"`
}

// PDDecider is conditional disaggregation.
type PDDecider struct {
	// MinUncachedTokens: a request is prefilled on a prefill pod only when at
	// least this many of its prompt tokens are not cached on the chosen
	// decode pod; otherwise the decode pod prefills it itself and no KV
	// moves. 0 always disaggregates.
	MinUncachedTokens int `json:"minUncachedTokens"`
}

// PluginConfig carries one plugin's args.
type PluginConfig struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Plugins are the enabled filters and scorers, in order.
type Plugins struct {
	Filter PluginSet `json:"Filter"`
	Score  PluginSet `json:"Score"`
}

// PluginSet is an enabled and a disabled list.
type PluginSet struct {
	Enabled  []PluginRef `json:"enabled,omitempty"`
	Disabled []PluginRef `json:"disabled,omitempty"`
}

// PluginRef names a plugin, with a weight for scorers. In YAML it is either
// a bare name or {name, weight}.
type PluginRef struct {
	Name   string   `json:"name"`
	Weight *float64 `json:"weight,omitempty"`
}

// UnmarshalJSON accepts "name" or {"name": ..., "weight": ...}.
func (p *PluginRef) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &p.Name)
	}
	type plain PluginRef
	var v plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*p = PluginRef(v)
	return nil
}

// Parse decodes a configuration strictly.
func Parse(data []byte) (*RouterConfiguration, error) {
	var c RouterConfiguration
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("decode router configuration: %w", err)
	}
	if a := c.Auth; a != nil {
		if err := validateAuth(a); err != nil {
			return nil, err
		}
	}
	if c.Scheduler.TopN < 0 {
		return nil, fmt.Errorf("scheduler.topN must be >= 0, got %d", c.Scheduler.TopN)
	}
	if ss := c.SessionSticky; ss != nil {
		switch ss.Store {
		case "", SessionStoreMemory:
		case SessionStoreRedis:
			if ss.Redis == nil || ss.Redis.Address == "" {
				return nil, fmt.Errorf("sessionSticky.redis.address is required with store: redis")
			}
			if _, _, err := net.SplitHostPort(ss.Redis.Address); err != nil {
				return nil, fmt.Errorf("sessionSticky.redis.address %q: want host:port", ss.Redis.Address)
			}
		default:
			return nil, fmt.Errorf("sessionSticky.store %q: want memory or redis", ss.Store)
		}
		if ss.MaxEntries < 0 {
			return nil, fmt.Errorf("sessionSticky.maxEntries must be >= 0, got %d", ss.MaxEntries)
		}
	}
	if rl := c.RateLimit; rl != nil && rl.Scope != "" && rl.Scope != RateLimitScopeModel && rl.Scope != RateLimitScopeTenant {
		return nil, fmt.Errorf("rateLimit.scope %q: want model or tenant", rl.Scope)
	}
	if f := c.Fairness; f != nil {
		switch {
		case f.MaxQueued != nil && *f.MaxQueued < 1:
			return nil, fmt.Errorf("fairness.maxQueued must be at least 1, got %d", *f.MaxQueued)
		case f.MaxQueuedPerTenant != nil && *f.MaxQueuedPerTenant < 1:
			return nil, fmt.Errorf("fairness.maxQueuedPerTenant must be at least 1, got %d", *f.MaxQueuedPerTenant)
		case f.QueueTimeout != nil && f.QueueTimeout.Duration <= 0:
			return nil, fmt.Errorf("fairness.queueTimeout must be positive")
		case f.InputWeight != nil && *f.InputWeight < 0, f.OutputWeight != nil && *f.OutputWeight < 0:
			return nil, fmt.Errorf("fairness.inputWeight and outputWeight must be >= 0")
		case f.MaxInFlightPerPod < 0:
			return nil, fmt.Errorf("fairness.maxInFlightPerPod must be >= 0, got %d", f.MaxInFlightPerPod)
		}
		for t, w := range f.TenantWeights {
			if w <= 0 {
				return nil, fmt.Errorf("fairness.tenantWeights[%q] must be positive, got %v", t, w)
			}
		}
	}
	if cs := c.ColdStart; cs != nil {
		switch {
		case cs.MaxHeldRequests != nil && *cs.MaxHeldRequests < 0:
			return nil, fmt.Errorf("coldStart.maxHeldRequests must be >= 0, got %d", *cs.MaxHeldRequests)
		case cs.ReleasePerPod != nil && *cs.ReleasePerPod < 0:
			return nil, fmt.Errorf("coldStart.releasePerPod must be >= 0, got %d", *cs.ReleasePerPod)
		case cs.HoldTimeout != nil && cs.HoldTimeout.Duration <= 0:
			return nil, fmt.Errorf("coldStart.holdTimeout must be positive, got %s", cs.HoldTimeout.Duration)
		case cs.WakeInterval != nil && cs.WakeInterval.Duration < 100*time.Millisecond:
			return nil, fmt.Errorf("coldStart.wakeInterval must be at least 100ms, got %s", cs.WakeInterval.Duration)
		}
	}
	if m := c.Migration; m != nil {
		switch {
		case m.MaxAttempts != nil && (*m.MaxAttempts < 0 || *m.MaxAttempts > 10):
			return nil, fmt.Errorf("migration.maxAttempts must be in [0,10], got %d", *m.MaxAttempts)
		case m.IdleTimeout != nil && m.IdleTimeout.Duration < 0:
			return nil, fmt.Errorf("migration.idleTimeout must be >= 0 (0: off), got %s", m.IdleTimeout.Duration)
		}
	}
	if d := c.Scheduler.PDDecider; d != nil && d.MinUncachedTokens < 0 {
		return nil, fmt.Errorf("scheduler.pdDecider.minUncachedTokens must be >= 0, got %d", d.MinUncachedTokens)
	}
	return &c, nil
}

func validateAuth(a *AuthConfig) error {
	if a.JWKSURI == "" {
		if len(a.Rules) > 0 && a.TenantHeader == "" {
			return fmt.Errorf("auth.rules need auth.jwksUri or auth.tenantHeader: authorization works on identified callers")
		}
		return validateRules(a.Rules)
	}
	u, err := url.Parse(a.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("auth.jwksUri %q: want an http(s) URL", a.JWKSURI)
	}
	if a.RefreshInterval != nil && a.RefreshInterval.Duration < time.Minute {
		return fmt.Errorf("auth.refreshInterval must be at least 1m, got %s", a.RefreshInterval.Duration)
	}
	return validateRules(a.Rules)
}

func validateRules(rules []AuthRule) error {
	for i, r := range rules {
		if len(r.Models) == 0 {
			return fmt.Errorf("auth.rules[%d].models: at least one model (glob) is required", i)
		}
		for _, g := range append(append([]string{}, r.Models...), r.Subjects...) {
			if _, err := path.Match(g, ""); err != nil {
				return fmt.Errorf("auth.rules[%d]: bad glob %q", i, g)
			}
		}
	}
	return nil
}

// Load reads and parses a file.
func Load(path string) (*RouterConfiguration, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read router configuration: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, data, nil
}

// Default is Kthena's default scheduler configuration, chosen with the
// quality benchmark (docs/bench/quality.md): drop only engines with a long
// queue, then prefer the engine that already caches the prompt's prefix,
// with the router's live in-flight count weighted as much as the prefix so
// that affinity yields before an engine queues (prefix-cache ×3 kept the
// hit rate but doubled-to-quadrupled TTFT p90 on long shared prompts), and
// the scraped KV usage kept light because it is up to one scrape stale
// (weighted ×2 it herded requests onto one engine). The queue filter is at
// 40 waiting requests, not upstream's 10: under saturation every engine
// hovers around 10 waiting, and the filter then sent requests away from the
// engine caching their prefix (on saturated long shared prompts the hit
// rate fell to 49–59 % against the oracle's 64 %; at 40 it is the oracle's
// and TTFT p90 is a quarter); at lower load the filter never acts.
// kvcache-aware, at prefix-cache's weight, scores only engines that publish
// KV events (elsewhere it is neutral and costs no tokenisation); it
// tokenises through the engine's /tokenize unless configured with the
// model's tokenizer (docs/kvcache-routing.md).
const Default = defaultAggregated + DefaultProfiles + DefaultPDDecider

const defaultAggregated = `scheduler:
  pluginConfig:
  - name: least-request
    args:
      maxWaitingRequests: 40
  - name: prefix-cache
    args:
      blockSizeToHash: 64
      maxBlocksToMatch: 128
      maxHashCacheSize: 50000
      topKMatches: 5
  - name: kvcache-aware
  plugins:
    Filter:
      enabled:
      - least-request
    Score:
      enabled:
      - name: prefix-cache
        weight: 2
      - name: kvcache-aware
        weight: 2
      - name: least-request
        weight: 2
      - name: gpu-usage
        weight: 1
`

// DefaultProfiles are the prefill and decode profiles of PD routing
// (docs/bench/pd.md): prefill pods by cached prefix and the router's
// in-flight count (prefill load), decode pods by in-flight count and KV
// usage, with the cached prefix lighter (a prefix cached on the decode pod
// saves transfer, and lets the decider skip prefill).
const DefaultProfiles = `  profiles:
    prefill:
      plugins:
        Filter:
          enabled:
          - least-request
        Score:
          enabled:
          - name: prefix-cache
            weight: 2
          - name: kvcache-aware
            weight: 2
          - name: least-request
            weight: 2
    decode:
      plugins:
        Filter:
          enabled:
          - least-request
        Score:
          enabled:
          - name: least-request
            weight: 2
          - name: gpu-usage
            weight: 1
          - name: prefix-cache
            weight: 1
`

// DefaultPDDecider is the default conditional disaggregation
// (docs/bench/pd.md).
const DefaultPDDecider = `  pdDecider:
    minUncachedTokens: 512
`

// UpstreamDefault is upstream's Helm default blend, for comparisons.
const UpstreamDefault = `scheduler:
  pluginConfig:
  - name: least-request
    args:
      maxWaitingRequests: 10
  - name: least-latency
    args:
      TTFTTPOTWeightFactor: 0.5
  - name: prefix-cache
    args:
      blockSizeToHash: 64
      maxBlocksToMatch: 128
      maxHashCacheSize: 50000
      topKMatches: 5
  plugins:
    Filter:
      enabled:
      - least-request
      disabled:
      - lora-affinity
    Score:
      enabled:
      - name: least-request
        weight: 1
      - name: gpu-usage
        weight: 1
      - name: least-latency
        weight: 1
      - name: prefix-cache
        weight: 1
`
