package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"
)

// keySet is the JWKS of the issuer, fetched from its URL, refreshed
// periodically and when a token names a key it does not hold: a rotated
// key is accepted within seconds, while forged key ids make the router
// fetch at most once per minRefresh.
type keySet struct {
	url        string
	client     *http.Client
	log        logr.Logger
	refresh    time.Duration
	minRefresh time.Duration

	mu   sync.Mutex
	keys *jose.JSONWebKeySet
	// unknownFetch is the last fetch for an unknown key id.
	unknownFetch time.Time
	loaded       chan struct{}
	once         sync.Once
}

func newKeySet(url string, client *http.Client, refresh time.Duration, log logr.Logger) *keySet {
	return &keySet{url: url, client: client, log: log, refresh: refresh, minRefresh: 5 * time.Second, loaded: make(chan struct{})}
}

// run loads the keys (three tries, as upstream) and refreshes them until
// ctx ends.
func (k *keySet) run(ctx context.Context) {
	for try := range 3 {
		if err := k.fetch(ctx); err == nil {
			break
		} else {
			k.log.Error(err, "fetching the JWKS failed", "url", k.url, "try", try+1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(try+1) * time.Second):
		}
	}
	t := time.NewTicker(k.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.fetch(ctx); err != nil {
				k.log.Error(err, "refreshing the JWKS failed; keeping the keys held", "url", k.url)
			}
		}
	}
}

func (k *keySet) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s answered %d", k.url, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("JWKS %s: %w", k.url, err)
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("JWKS %s holds no keys", k.url)
	}
	k.mu.Lock()
	k.keys = &set
	k.mu.Unlock()
	k.once.Do(func() { close(k.loaded) })
	return nil
}

var (
	errNoKeys     = errors.New("the issuer's signing keys are not loaded yet")
	errUnknownKey = errors.New("the token is signed with a key the issuer does not publish")
)

// key returns the public key for kid ("" when the token names none and the
// set has one signing key), refreshing once if kid is unknown.
func (k *keySet) key(ctx context.Context, kid string) (any, error) {
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	k.mu.Lock()
	loaded := k.keys != nil
	due := time.Since(k.unknownFetch) >= k.minRefresh
	if due {
		k.unknownFetch = time.Now()
	}
	k.mu.Unlock()
	if !due {
		if !loaded {
			return nil, errNoKeys
		}
		return nil, errUnknownKey
	}
	if err := k.fetch(ctx); err != nil {
		if !loaded {
			return nil, errNoKeys
		}
		k.log.Error(err, "refreshing the JWKS for an unknown key id failed", "url", k.url)
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	return nil, errUnknownKey
}

func (k *keySet) lookup(kid string) (any, bool) {
	k.mu.Lock()
	set := k.keys
	k.mu.Unlock()
	if set == nil {
		return nil, false
	}
	if kid != "" {
		for _, key := range set.Key(kid) {
			if key.Use == "" || key.Use == "sig" {
				return key.Key, true
			}
		}
		return nil, false
	}
	var only any
	n := 0
	for _, key := range set.Keys {
		if key.Use == "" || key.Use == "sig" {
			only, n = key.Key, n+1
		}
	}
	return only, n == 1
}
