// Package session implements session affinity ("session sticky") for the
// router: it reads a session key from a request as a ModelServer's
// spec.trafficPolicy.sessionSticky says, keeps session → pod bindings in a
// Store (router memory or a shared Redis), and tells the caller whether the
// bound pod can take the next request of the session or the session must be
// bound anew.
//
// The package decides nothing about scheduling: the caller passes the
// candidate endpoints it is about to schedule among and a saturation
// predicate, and records the pod it actually sent the request to.
package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

// MaxKeyLen bounds a session key in bytes. A longer value is replaced by a
// digest of it (digestPrefix and 43 characters), so distinct long values
// stay distinct while memory stays bounded.
const MaxKeyLen = 128

// digestPrefix marks a key that stands for a longer value.
const digestPrefix = "sha256:"

// maxTokenLen bounds the bearer token Key decodes; longer tokens are
// ignored rather than parsed.
const maxTokenLen = 16 << 10

// Key returns the session key of r: the value of the first source of spec
// that is present and not blank, in the order the sources are listed.
// ok is false when spec is nil or no source yields a value; the request is
// then scheduled without affinity.
//
// Header names match case-insensitively, cookie names and query parameters
// exactly. A JWTClaim source reads a top-level string or number claim from
// the payload of the "Authorization: Bearer" token. The token is decoded,
// not verified: the key only steers which pod serves a request, which a
// client may choose anyway by sending a different key, and is never used to
// decide what the client is allowed to do. Authentication, where enabled,
// is done elsewhere.
//
// Key never panics on malformed input; an unreadable source counts as absent.
func Key(spec *networkingv1alpha1.SessionSticky, r *http.Request) (key string, ok bool) {
	if spec == nil || r == nil {
		return "", false
	}
	var query url.Values // parsed once, on first use
	for _, src := range spec.Sources {
		var v string
		switch src.Type {
		case networkingv1alpha1.SessionKeySourceHeader:
			v = r.Header.Get(src.Name)
		case networkingv1alpha1.SessionKeySourceQuery:
			if r.URL == nil {
				continue
			}
			if query == nil {
				query = r.URL.Query()
			}
			v = query.Get(src.Name)
		case networkingv1alpha1.SessionKeySourceCookie:
			if c, err := r.Cookie(src.Name); err == nil {
				v = c.Value
			}
		case networkingv1alpha1.SessionKeySourceJWTClaim:
			v = bearerClaim(r.Header.Get("Authorization"), src.Name)
		}
		if v = strings.TrimSpace(v); v != "" {
			return bound(v), true
		}
	}
	return "", false
}

// bound returns v, or a fixed-length digest of v when v is longer than
// MaxKeyLen.
func bound(v string) string {
	if len(v) <= MaxKeyLen {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return digestPrefix + base64.RawURLEncoding.EncodeToString(sum[:])
}

// bearerClaim returns the claim named name from the payload of a bearer
// token in an Authorization header value, as text: a string claim as is, a
// number claim as written. Anything else (no bearer token, a token that is
// not three base64url segments, a payload that is not a JSON object, a
// missing claim, a boolean, object or array claim) gives "".
func bearerClaim(authorization, name string) string {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return ""
	}
	token := strings.TrimSpace(authorization[len(scheme):])
	if len(token) > maxTokenLen {
		return ""
	}
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header == "" {
		return ""
	}
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return ""
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(raw, &claims); err != nil {
		return ""
	}
	v := bytes.TrimSpace(claims[name])
	if len(v) == 0 {
		return ""
	}
	switch c := v[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return ""
		}
		return s
	case c == '-' || ('0' <= c && c <= '9'):
		return string(v) // json.Unmarshal above has checked it is a number
	default:
		return ""
	}
}
