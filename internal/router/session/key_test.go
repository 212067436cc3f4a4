package session

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

func sources(pairs ...string) *networkingv1alpha1.SessionSticky {
	ss := &networkingv1alpha1.SessionSticky{}
	for i := 0; i+1 < len(pairs); i += 2 {
		ss.Sources = append(ss.Sources, networkingv1alpha1.SessionKeySource{Type: networkingv1alpha1.SessionKeySourceType(pairs[i]), Name: pairs[i+1]})
	}
	return ss
}

// jwt builds an unsigned token with the given JSON payload.
func jwt(payload string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none"}`)) + "." + enc.EncodeToString([]byte(payload)) + ".sig"
}

func TestKey(t *testing.T) {
	all := sources("Header", "X-Session-ID", "Query", "session_id", "Cookie", "sid", "JWTClaim", "sub")
	long := strings.Repeat("k", MaxKeyLen+1)
	cases := []struct {
		name   string
		spec   *networkingv1alpha1.SessionSticky
		url    string
		header map[string]string
		want   string // "" means no key
	}{
		{"nil spec", nil, "/?session_id=q", map[string]string{"X-Session-ID": "h"}, ""},
		{"nothing present", all, "/", nil, ""},
		{"header wins over query", all, "/?session_id=q", map[string]string{"X-Session-ID": "h"}, "h"},
		{"header name is case-insensitive", sources("Header", "x-session-id"), "/", map[string]string{"X-SESSION-ID": "h"}, "h"},
		{"blank header falls through to query", all, "/?session_id=q", map[string]string{"X-Session-ID": "  "}, "q"},
		{"value is trimmed", all, "/", map[string]string{"X-Session-ID": "  h  "}, "h"},
		{"query escapes decoded", all, "/?session_id=a%20b", nil, "a b"},
		{"cookie", all, "/", map[string]string{"Cookie": "other=1; sid=c"}, "c"},
		{"cookie name is case-sensitive", all, "/", map[string]string{"Cookie": "SID=c"}, ""},
		{"jwt string claim", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`{"sub":"user-1"}`)}, "user-1"},
		{"jwt scheme is case-insensitive", all, "/", map[string]string{"Authorization": "bearer " + jwt(`{"sub":"user-1"}`)}, "user-1"},
		{"jwt number claim", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`{"sub":12345}`)}, "12345"},
		{"jwt claim name with dots", sources("JWTClaim", "https://example.com/tenant"), "/", map[string]string{"Authorization": "Bearer " + jwt(`{"https://example.com/tenant":"t1"}`)}, "t1"},
		{"jwt padded payload tolerated", all, "/", map[string]string{"Authorization": "Bearer " + strings.Replace(jwt(`{"sub":"ab"}`), ".sig", "==.sig", 1)}, "ab"},
		{"jwt boolean claim is absent", sources("JWTClaim", "admin", "Query", "session_id"), "/?session_id=q", map[string]string{"Authorization": "Bearer " + jwt(`{"admin":true}`)}, "q"},
		{"jwt object claim is absent", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`{"sub":{"a":1}}`)}, ""},
		{"jwt missing claim", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`{"iss":"x"}`)}, ""},
		{"jwt not base64", all, "/", map[string]string{"Authorization": "Bearer a.!!!.c"}, ""},
		{"jwt payload not an object", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`["sub"]`)}, ""},
		{"jwt one segment", all, "/", map[string]string{"Authorization": "Bearer abc"}, ""},
		{"basic auth is not a jwt", all, "/", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, ""},
		{"jwt too long", all, "/", map[string]string{"Authorization": "Bearer " + jwt(`{"sub":"`+strings.Repeat("x", maxTokenLen)+`"}`)}, ""},
		{"long value is digested", all, "/", map[string]string{"X-Session-ID": long}, bound(long)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, c.url, nil)
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			got, ok := Key(c.spec, r)
			if got != c.want || ok != (c.want != "") {
				t.Fatalf("Key = %q, %v; want %q", got, ok, c.want)
			}
		})
	}
}

func TestBound(t *testing.T) {
	short := strings.Repeat("a", MaxKeyLen)
	if bound(short) != short {
		t.Fatalf("a key of MaxKeyLen bytes was changed")
	}
	a, b := bound(short+"a"), bound(short+"b")
	if a == b || len(a) > MaxKeyLen || !strings.HasPrefix(a, digestPrefix) {
		t.Fatalf("digests %q and %q: want distinct, prefixed, at most %d bytes", a, b, MaxKeyLen)
	}
}

func TestKeyWithoutURL(t *testing.T) {
	r := &http.Request{Header: http.Header{}}
	if _, ok := Key(sources("Query", "q", "Cookie", "c", "Header", "h", "JWTClaim", "sub"), r); ok {
		t.Fatal("got a key from an empty request")
	}
}

// FuzzKey: Key never panics on any header, query, cookie or token, and
// what it returns is bounded.
func FuzzKey(f *testing.F) {
	f.Add("h", "session_id=q", "sid=c", "Bearer "+jwt(`{"sub":"u"}`))
	f.Add("", "session_id=%zz&;;", "sid=\"quoted\"; x", "Bearer a.b.c")
	f.Add("", "", "", "Bearer "+jwt(`{"sub":1e400}`))
	f.Add("", "", "", "Bearer ..")
	spec := sources("Header", "X-Session-ID", "Query", "session_id", "Cookie", "sid", "JWTClaim", "sub")
	f.Fuzz(func(t *testing.T, header, rawQuery, cookie, authorization string) {
		r := &http.Request{Header: http.Header{
			"X-Session-Id":  {header},
			"Cookie":        {cookie},
			"Authorization": {authorization},
		}}
		r.URL = &url.URL{Path: "/", RawQuery: rawQuery}
		key, ok := Key(spec, r)
		if ok != (key != "") {
			t.Fatalf("ok %v with key %q", ok, key)
		}
		if len(key) > MaxKeyLen {
			t.Fatalf("key of %d bytes, above %d", len(key), MaxKeyLen)
		}
		_ = bearerClaim(authorization, header) // any claim name
	})
}
