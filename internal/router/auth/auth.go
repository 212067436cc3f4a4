// Package auth is the router's authentication and authorization: a JWT
// from `Authorization: Bearer`, verified against the issuer's JWKS (issuer,
// audiences, exp/nbf/iat with a minute of skew, RS/PS/ES/EdDSA), gives the
// caller's identity; per-model rules of the router configuration say which
// identities may use which models.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/config"
)

// Identity is an authenticated caller.
type Identity struct {
	// Subject is the tenant: the configured claim (default sub).
	Subject string
	Groups  []string
	claims  map[string]any
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller of ctx, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// Error is an authentication or authorization failure with its HTTP
// status and OpenAI-style error type.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// algorithms the router accepts; "none" and HMAC never (the router holds
// no shared secret).
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// skew is the clock skew tolerated on exp, nbf and iat (upstream's).
const skew = time.Minute

// Authenticator verifies tokens and applies the rules. It is safe for
// concurrent use.
type Authenticator struct {
	cfg  config.AuthConfig
	keys *keySet
	now  func() time.Time
}

// New returns an Authenticator for cfg: JWT when cfg.JWKSURI is set (Run
// must be started for its keys to load), else the trusted tenant header.
func New(cfg config.AuthConfig, client *http.Client, log logr.Logger) *Authenticator {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	refresh := time.Hour
	if cfg.RefreshInterval != nil && cfg.RefreshInterval.Duration > 0 {
		refresh = cfg.RefreshInterval.Duration
	}
	return &Authenticator{cfg: cfg, keys: newKeySet(cfg.JWKSURI, client, refresh, log), now: time.Now}
}

// Run loads and refreshes the issuer's keys until ctx ends (at once for the
// tenant header).
func (a *Authenticator) Run(ctx context.Context) {
	if a.cfg.JWKSURI != "" {
		a.keys.run(ctx)
	}
}

// Loaded is closed once the keys were loaded the first time.
func (a *Authenticator) Loaded() <-chan struct{} { return a.keys.loaded }

// Authenticate verifies the request's bearer token, or reads the trusted
// tenant header. Without a token configuration and without the header the
// caller is anonymous (nil) unless rules need an identity.
func (a *Authenticator) Authenticate(r *http.Request) (*Identity, error) {
	if a.cfg.JWKSURI == "" {
		tenant := strings.TrimSpace(r.Header.Get(a.cfg.TenantHeader))
		switch {
		case tenant != "":
			return &Identity{Subject: tenant}, nil
		case len(a.cfg.Rules) > 0:
			return nil, unauthorized(fmt.Sprintf("the %s header naming the caller is required", a.cfg.TenantHeader))
		}
		return nil, nil
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, unauthorized("a bearer token is required (Authorization: Bearer <JWT>)")
	}
	tok, err := jwt.ParseSigned(strings.TrimSpace(token), algorithms)
	if err != nil {
		return nil, unauthorized("the bearer token is not a signed JWT with an accepted algorithm")
	}
	if len(tok.Headers) != 1 {
		return nil, unauthorized("the bearer token must have one signature")
	}
	key, err := a.keys.key(r.Context(), tok.Headers[0].KeyID)
	switch {
	case errors.Is(err, errNoKeys):
		return nil, &Error{Status: http.StatusServiceUnavailable, Type: "authentication_unavailable", Message: "cannot verify tokens: " + err.Error()}
	case err != nil:
		return nil, unauthorized(err.Error())
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key, &std, &all); err != nil {
		return nil, unauthorized("the bearer token's signature does not verify")
	}
	if std.Expiry == nil {
		return nil, unauthorized("the bearer token has no expiry (exp)")
	}
	exp := jwt.Expected{Issuer: a.cfg.Issuer, AnyAudience: a.cfg.Audiences, Time: a.now()}
	if err := std.ValidateWithLeeway(exp, skew); err != nil {
		return nil, unauthorized(claimError(err))
	}
	id := &Identity{claims: all}
	id.Subject = stringClaim(all, a.tenantClaim())
	if id.Subject == "" {
		return nil, unauthorized(fmt.Sprintf("the bearer token has no %q claim to identify the caller", a.tenantClaim()))
	}
	id.Groups = stringsClaim(all, a.groupsClaim())
	return id, nil
}

func (a *Authenticator) tenantClaim() string {
	if a.cfg.TenantClaim != "" {
		return a.cfg.TenantClaim
	}
	return "sub"
}

func (a *Authenticator) groupsClaim() string {
	if a.cfg.GroupsClaim != "" {
		return a.cfg.GroupsClaim
	}
	return "groups"
}

// Allowed reports whether id may use model. Without rules every
// authenticated caller may; with rules, only what a rule grants.
func (a *Authenticator) Allowed(id *Identity, model string) bool {
	if len(a.cfg.Rules) == 0 {
		return true
	}
	for _, r := range a.cfg.Rules {
		if matchesModel(r.Models, model) && grants(r, id) {
			return true
		}
	}
	return false
}

// Authorize is Allowed as an error: 403 naming only the model asked for.
func (a *Authenticator) Authorize(id *Identity, model string) error {
	if id == nil || a.Allowed(id, model) {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Type: "permission_denied", Message: fmt.Sprintf("model %q is not available to this caller", model)}
}

// grants reports whether rule r names id: a rule that names nobody
// (no subjects, groups or claims) names every authenticated caller;
// otherwise one of its subjects (globs), groups, or claim values must match.
func grants(r config.AuthRule, id *Identity) bool {
	if len(r.Subjects) == 0 && len(r.Groups) == 0 && len(r.Claims) == 0 {
		return true
	}
	for _, s := range r.Subjects {
		if ok, _ := path.Match(s, id.Subject); ok {
			return true
		}
	}
	for _, g := range r.Groups {
		for _, have := range id.Groups {
			if g == have {
				return true
			}
		}
	}
	for name, values := range r.Claims {
		for _, have := range stringsClaim(id.claims, name) {
			for _, v := range values {
				if v == have {
					return true
				}
			}
		}
	}
	return false
}

func matchesModel(globs []string, model string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, model); ok {
			return true
		}
	}
	return false
}

func unauthorized(msg string) *Error {
	return &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Message: msg}
}

func claimError(err error) string {
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return "the bearer token has expired"
	case errors.Is(err, jwt.ErrNotValidYet):
		return "the bearer token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return "the bearer token is issued in the future (iat)"
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return "the bearer token's issuer is not accepted"
	case errors.Is(err, jwt.ErrInvalidAudience):
		return "the bearer token's audience is not accepted"
	}
	return "the bearer token's claims are not valid"
}

func stringClaim(claims map[string]any, name string) string {
	switch v := claims[name].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	}
	return ""
}

// stringsClaim reads a claim that is a string or a list of strings.
func stringsClaim(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
