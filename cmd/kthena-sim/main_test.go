package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// The binary's entry point with llm-d-style args: serves, answers, and
// exits 0 on SIGTERM (ctx cancellation).
func TestRunServesAndStopsGracefully(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"--host", "127.0.0.1", "--port", port, "--time-scale", "0.01", "--mode", "echo",
			"--served-model-name", "sim-model", "--force-dummy-tokenizer", "--prefill-time-per-token", "2"})
	}()
	base := "http://127.0.0.1:" + port
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond)
	resp, err := http.Post(base+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"sim-model","prompt":"ping pong","max_tokens":2}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	cancel()
	select {
	case code := <-exit:
		assert.Zero(t, code)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	assert.Equal(t, 2, run(context.Background(), []string{"--lora-modules", "not-a-module"}))
	assert.Equal(t, 1, run(context.Background(), []string{"--engine", "tgi"}))
	// Tokenizer files the simulator cannot reproduce stop it at start.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(`{"model": {"type": "Unigram", "vocab": []}}`), 0o644))
	assert.Equal(t, 1, run(context.Background(), []string{"--tokenizer-dir", dir}))
	assert.Equal(t, 1, run(context.Background(), []string{"--tokenizer-dir", filepath.Join(dir, "missing")}))
}

func TestLMCacheServerAnswersLookups(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- serveLMCache(ctx, ln) }()
	key := strings.Repeat("ab", 32)
	url := "http://" + ln.Addr().String() + "/sim/v1/lmcache/"
	for _, op := range []string{"put", "lookup"} {
		resp, err := http.Post(url+op, "application/json", strings.NewReader(`{"chunks":["`+key+`"]}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, string(body))
		assert.Contains(t, string(body), ":1", op)
	}
	cancel()
	assert.Equal(t, 0, <-done)
}
