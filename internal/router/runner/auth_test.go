package runner

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/kthena/kthena/internal/router/config"
)

// issuer serves a JWKS and signs tokens with its keys.
type issuer struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]any // kid -> private key
	public  []jose.JSONWebKey
	fetches atomic.Int32
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t, keys: map[string]any{}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		defer is.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: is.public})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

// addKey publishes a new key under kid; alg picks its type.
func (is *issuer) addKey(kid string, alg jose.SignatureAlgorithm) {
	var priv, pub any
	switch alg {
	case jose.RS256:
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		priv, pub = k, &k.PublicKey
	case jose.ES256:
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		priv, pub = k, &k.PublicKey
	case jose.EdDSA:
		p, k, _ := ed25519.GenerateKey(rand.Reader)
		priv, pub = k, p
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = priv
	is.public = append(is.public, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"})
}

type tokenOpts struct {
	kid, sub, iss string
	aud           []string
	exp, nbf      time.Time
	groups        []string
	alg           jose.SignatureAlgorithm
	signWith      any // a key other than kid's (a forged signature)
}

func (is *issuer) token(o tokenOpts) string {
	is.t.Helper()
	if o.alg == "" {
		o.alg = jose.RS256
	}
	if o.iss == "" {
		o.iss = "https://issuer.test"
	}
	if o.aud == nil {
		o.aud = []string{"kthena"}
	}
	if o.exp.IsZero() {
		o.exp = time.Now().Add(time.Hour)
	}
	is.mu.Lock()
	key := is.keys[o.kid]
	is.mu.Unlock()
	if o.signWith != nil {
		key = o.signWith
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: o.alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", o.kid))
	if err != nil {
		is.t.Fatal(err)
	}
	std := jwt.Claims{Subject: o.sub, Issuer: o.iss, Audience: o.aud, Expiry: jwt.NewNumericDate(o.exp), IssuedAt: jwt.NewNumericDate(time.Now())}
	if !o.nbf.IsZero() {
		std.NotBefore = jwt.NewNumericDate(o.nbf)
	}
	s, err := jwt.Signed(signer).Claims(std).Claims(map[string]any{"groups": o.groups}).Serialize()
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

const twoRoutes = `kind: ModelRoute
metadata: {name: r}
spec: {modelName: llama, rules: [{targetModels: [{modelServerName: s}]}]}
---
kind: ModelRoute
metadata: {name: q}
spec: {modelName: qwen-7b, rules: [{targetModels: [{modelServerName: s}]}]}
`

func authConfig(jwks string) string {
	return fmt.Sprintf(`auth:
  issuer: https://issuer.test
  audiences: [kthena]
  jwksUri: %s
  rules:
  - {models: [llama], groups: [team-a]}
  - {models: ["qwen-*"], subjects: [bob]}
`, jwks)
}

func TestAuthentication(t *testing.T) {
	is := newIssuer(t)
	is.addKey("rsa-1", jose.RS256)
	e := newEngine(t, "e1")
	h := start(t, docs(server("s", "", ""), twoRoutes, endpoints(map[*fakeEngine]string{e: "s"})), authConfig(is.srv.URL))
	alice := is.token(tokenOpts{kid: "rsa-1", sub: "alice", groups: []string{"team-a"}})
	eventually(t, "keys loaded", func() bool { return h.chat("llama", bearer(alice)).status == http.StatusOK })

	r := h.chat("llama", nil)
	if r.status != http.StatusUnauthorized || errType(r) != "authentication_error" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no token: %d %v %s", r.status, r.header, r.body)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tc := range map[string]struct {
		o    tokenOpts
		want string
	}{
		"expired":         {tokenOpts{kid: "rsa-1", sub: "alice", exp: time.Now().Add(-2 * time.Minute)}, "expired"},
		"not yet valid":   {tokenOpts{kid: "rsa-1", sub: "alice", nbf: time.Now().Add(5 * time.Minute)}, "not valid yet"},
		"wrong issuer":    {tokenOpts{kid: "rsa-1", sub: "alice", iss: "https://evil.test"}, "issuer"},
		"wrong audience":  {tokenOpts{kid: "rsa-1", sub: "alice", aud: []string{"other"}}, "audience"},
		"wrong signature": {tokenOpts{kid: "rsa-1", sub: "alice", signWith: other}, "signature"},
		"unknown key":     {tokenOpts{kid: "nobody", sub: "alice", signWith: other}, "key"},
		"no subject":      {tokenOpts{kid: "rsa-1"}, "claim"},
	} {
		r := h.chat("llama", bearer(is.token(tc.o)))
		if r.status != http.StatusUnauthorized || !strings.Contains(errMsg(r), tc.want) {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	// Within the minute of skew: accepted.
	if r := h.chat("llama", bearer(is.token(tokenOpts{kid: "rsa-1", sub: "alice", groups: []string{"team-a"}, exp: time.Now().Add(-20 * time.Second)}))); r.status != http.StatusOK {
		t.Errorf("expired within the skew: %d %s", r.status, r.body)
	}

	// Rotation: a token signed with a key the router has not seen yet makes
	// it fetch the keys again.
	is.addKey("ec-2", jose.ES256)
	is.addKey("ed-3", jose.EdDSA)
	for _, kid := range []string{"ec-2", "ed-3"} {
		alg := map[string]jose.SignatureAlgorithm{"ec-2": jose.ES256, "ed-3": jose.EdDSA}[kid]
		tok := is.token(tokenOpts{kid: kid, alg: alg, sub: "bob"})
		eventually(t, "rotated key "+kid+" accepted", func() bool { return h.chat("qwen-7b", bearer(tok)).status == http.StatusOK })
	}
	// Unknown key ids do not make the router fetch the keys on every request.
	before := is.fetches.Load()
	forged := is.token(tokenOpts{kid: "forged", sub: "alice", signWith: other})
	for range 5 {
		h.chat("llama", bearer(forged))
	}
	if n := is.fetches.Load() - before; n > 1 {
		t.Errorf("%d key fetches for 5 requests with unknown key ids", n)
	}
}

func TestAuthorization(t *testing.T) {
	is := newIssuer(t)
	is.addKey("k", jose.ES256)
	e := newEngine(t, "e1")
	file := docs(server("s", "", ""), twoRoutes, endpoints(map[*fakeEngine]string{e: "s"}))
	h := start(t, file, authConfig(is.srv.URL))
	alice := bearer(is.token(tokenOpts{kid: "k", alg: jose.ES256, sub: "alice", groups: []string{"team-a"}}))
	bob := bearer(is.token(tokenOpts{kid: "k", alg: jose.ES256, sub: "bob"}))
	eventually(t, "keys loaded", func() bool { return h.chat("llama", alice).status == http.StatusOK })

	r := h.chat("qwen-7b", alice)
	if r.status != http.StatusForbidden || errType(r) != "permission_denied" || !strings.Contains(errMsg(r), "qwen-7b") || strings.Contains(string(r.body), "llama") {
		t.Fatalf("alice on qwen-7b: %d %s", r.status, r.body)
	}
	if r := h.chat("llama", bob); r.status != http.StatusForbidden {
		t.Fatalf("bob on llama: %d %s", r.status, r.body)
	}
	if r := h.chat("qwen-7b", bob); r.status != http.StatusOK {
		t.Fatalf("bob on qwen-7b: %d %s", r.status, r.body)
	}
	// A model that does not exist is as forbidden as one that does: no hint.
	if r := h.chat("secret-model", bob); r.status != http.StatusForbidden {
		t.Fatalf("bob on an unknown model: %d %s", r.status, r.body)
	}
	for who, want := range map[string]string{"alice": "llama", "bob": "qwen-7b"} {
		hdr := map[string]string{"alice": alice["Authorization"], "bob": bob["Authorization"]}[who]
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.r.Addr()+"/v1/models", nil)
		req.Header.Set("Authorization", hdr)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		_ = json.NewDecoder(res.Body).Decode(&list)
		res.Body.Close()
		if len(list.Data) != 1 || list.Data[0].ID != want {
			t.Errorf("%s's /v1/models: %+v, want only %s", who, list.Data, want)
		}
	}

	// Hot reload: without auth every request passes again.
	h.writeFile(h.cfg, config.Default)
	eventually(t, "auth off after reload", func() bool { return h.chat("qwen-7b", nil).status == http.StatusOK })
}
