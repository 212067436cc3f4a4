package sim

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFailureInjectionByKind(t *testing.T) {
	f := startFleet(t, fastConfig(func(c *Config) {
		c.FailureInjectionRate = 100
		c.FailureTypes = []string{FailureRateLimit}
	}))
	status, body := postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(nil))
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, "RateLimitError", body["error"].(map[string]any)["type"])
}

func TestStartupDelayAndCrashAfter(t *testing.T) {
	tok, err := sharedTokenizer()
	require.NoError(t, err)
	e, err := New(fastConfig(func(c *Config) { c.StartupDelay = 400 * time.Second; c.CrashAfter = 2 }),
		WithLogger(logr.Discard()), WithTokenizer(tok))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- e.Serve(context.Background(), ln) }()
	url := "http://" + ln.Addr().String()

	resp, err := http.Get(url + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "loading")
	require.Eventually(t, func() bool {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond, "ready after the scaled startup delay (2 s wall)")

	for range 2 {
		status, _ := postJSON(t, url+"/v1/chat/completions", chatBody(nil))
		assert.Equal(t, 200, status)
	}
	select {
	case err := <-served:
		assert.True(t, errors.Is(err, ErrCrashed))
	case <-time.After(10 * time.Second):
		t.Fatal("engine did not crash after 2 requests")
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	tok, err := sharedTokenizer()
	require.NoError(t, err)
	e, err := New(fastConfig(func(c *Config) { c.TimeScale = 0.01; c.ShutdownGrace = 20 * time.Second }), WithTokenizer(tok))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()
	type res struct {
		status int
		body   map[string]any
	}
	done := make(chan res, 1)
	go func() {
		s, b := postJSON(t, url+"/v1/chat/completions", chatBody(map[string]any{"max_tokens": 3000}))
		done <- res{s, b}
	}()
	require.Eventually(t, func() bool { return e.Stats().Running == 1 }, 5*time.Second, time.Millisecond)
	cancel() // SIGTERM
	r := <-done
	assert.Equal(t, 200, r.status, "in-flight request completed during the grace period")
	assert.Equal(t, 3000.0, r.body["usage"].(map[string]any)["completion_tokens"])
	require.NoError(t, <-served)
	_, err = http.Get(url + "/health")
	assert.Error(t, err, "listener closed")
}
