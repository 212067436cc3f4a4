package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/framework"
)

// TTL returns the binding lifetime spec asks for: sessionAffinitySeconds,
// or the API default when it is unset (objects that did not pass through
// the API server's defaulting, such as file-provided ones).
func TTL(spec *networkingv1alpha1.SessionSticky) time.Duration {
	secs := networkingv1alpha1.DefaultSessionAffinitySeconds
	if spec != nil && spec.SessionAffinitySeconds != nil && *spec.SessionAffinitySeconds > 0 {
		secs = *spec.SessionAffinitySeconds
	}
	return time.Duration(secs) * time.Second
}

// Session is one request's session: the ModelServer its binding is scoped
// to, its key and the binding lifetime. The same key sent to two
// ModelServers makes two independent sessions.
type Session struct {
	// Server is the ModelServer's namespace/name.
	Server string
	// Key is the session key, as Key returns it.
	Key string
	// TTL is how long the binding lives after it was last recorded.
	TTL time.Duration
}

// NewSession returns the session of r for the ModelServer server (its
// namespace/name) whose sessionSticky policy is spec. ok is false when
// spec is nil or r carries no session key: the request is then scheduled
// without affinity and nothing is recorded.
func NewSession(server string, spec *networkingv1alpha1.SessionSticky, r *http.Request) (s Session, ok bool) {
	key, ok := Key(spec, r)
	if !ok {
		return Session{}, false
	}
	return Session{Server: server, Key: key, TTL: TTL(spec)}, true
}

// storeKey is the session's key in a Store: the ModelServer and a digest of
// the session key, so stores never hold the raw key (which may be a cookie
// or a user id) and every key has a bounded length.
func (s Session) storeKey() string {
	sum := sha256.Sum256([]byte(s.Key))
	return s.Server + ":" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// Outcome says what a lookup found.
type Outcome int

const (
	// Unbound: the session has no binding (new, expired, or the store
	// could not be read). Schedule, then Record the pod.
	Unbound Outcome = iota
	// Bound: the bound pod is among the candidates and not saturated. Send
	// the request there, then Record it to refresh the binding.
	Bound
	// Lost: the bound pod is not among the candidates (deleted, failing or
	// filtered out). Schedule among the candidates, then Record the new pod.
	Lost
	// Saturated: the bound pod is a candidate but the caller's predicate
	// says it is saturated. Schedule, then Record the new pod.
	Saturated
)

func (o Outcome) String() string {
	switch o {
	case Unbound:
		return "unbound"
	case Bound:
		return "bound"
	case Lost:
		return "lost"
	case Saturated:
		return "saturated"
	}
	return "unknown"
}

// Decision is the result of Affinity.Pick.
type Decision struct {
	Outcome Outcome
	// Pod is the key of the bound pod whenever there is a binding, even
	// one that cannot be used (Lost, Saturated); "" when Unbound.
	Pod string
	// Endpoint is the bound candidate when Outcome is Bound, else nil.
	Endpoint *framework.Endpoint
}

// Rebind reports whether the caller must schedule the request itself and
// then record the pod it chose.
func (d Decision) Rebind() bool { return d.Outcome != Bound }

// Affinity binds sessions to pods through one Store. A nil *Affinity is
// valid and keeps no bindings (every Pick is Unbound, Record does nothing).
// It is safe for concurrent use.
type Affinity struct {
	store Store
}

// NewAffinity returns an Affinity that keeps its bindings in store: a
// MemoryStore for one router replica, or a RedisStore shared by replicas.
func NewAffinity(store Store) *Affinity { return &Affinity{store: store} }

// Pick looks up s's binding among the endpoints the caller is about to
// schedule: the serving pods for an aggregated ModelServer, the decode pods
// for a prefill/decode one. saturated (nil: never) says whether the bound
// pod should take no more work now. Use the Endpoint of a Bound decision;
// otherwise schedule as usual. A store error is returned with an Unbound
// decision, so the caller may log it and go on without affinity.
func (a *Affinity) Pick(ctx context.Context, s Session, candidates []*framework.Endpoint, saturated func(*framework.Endpoint) bool) (Decision, error) {
	if a == nil {
		return Decision{}, nil
	}
	pod, ok, err := a.store.Get(ctx, s.storeKey())
	if err != nil || !ok {
		return Decision{}, err
	}
	for _, ep := range candidates {
		if ep == nil || ep.Key != pod {
			continue
		}
		if saturated != nil && saturated(ep) {
			return Decision{Outcome: Saturated, Pod: pod}, nil
		}
		return Decision{Outcome: Bound, Pod: pod, Endpoint: ep}, nil
	}
	return Decision{Outcome: Lost, Pod: pod}, nil
}

// Record binds s to pod (an endpoint key, namespace/name) for s.TTL (the
// API default when s.TTL ≤ 0), replacing any binding and restarting its
// lifetime. Call it once the request has been sent to pod (for a
// prefill/decode ModelServer, the decode pod), whether pod was the bound one
// or a new choice.
func (a *Affinity) Record(ctx context.Context, s Session, pod string) error {
	if a == nil || pod == "" {
		return nil
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = TTL(nil)
	}
	return a.store.Set(ctx, s.storeKey(), pod, ttl)
}

// Forget removes s's binding, for a caller that knows the bound pod is gone
// and will not record another one (no pod could take the request).
func (a *Affinity) Forget(ctx context.Context, s Session) error {
	if a == nil {
		return nil
	}
	return a.store.Delete(ctx, s.storeKey())
}
