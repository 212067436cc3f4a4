// Package realserver starts real third-party servers (redis-server,
// prometheus) for tests, on free local ports, and stops them when the test
// ends. The binaries come from Debian packages that hack/system-deps.sh
// installs (make test and .ci/run call it); a missing binary fails the
// test with that instruction rather than skipping it.
package realserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// lookPath finds bin or fails t with how to install it.
func lookPath(t testing.TB, bin string) string {
	t.Helper()
	p, err := findBinary(bin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// findBinary finds bin or says how to install it.
func findBinary(bin string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%s is not installed: run hack/system-deps.sh (make test does): %w", bin, err)
	}
	return p, nil
}

// freePort returns a port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Redis runs a throwaway redis-server (no persistence) and returns its
// address.
func Redis(t testing.TB) string {
	t.Helper()
	return StartRedis(t).Addr
}

// RedisServer is a running redis-server that a test or benchmark may
// stop and start again on the same address (an outage).
type RedisServer struct {
	Addr string
	bin  string
	dir  string
	cmd  *exec.Cmd
	exit chan error
}

// StartRedis runs a throwaway redis-server (no persistence) until the test
// ends.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	r, err := LaunchRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// LaunchRedis runs a throwaway redis-server (no persistence) with its log
// in dir, outside a test (benchmarks): the caller stops it and removes dir.
func LaunchRedis(dir string) (*RedisServer, error) {
	bin, err := findBinary("redis-server")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 { // the free port may be taken before redis-server binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bin: bin, dir: dir}
		if lastErr = r.start(); lastErr == nil {
			return r, nil
		}
	}
	return nil, fmt.Errorf("starting redis-server: %w", lastErr)
}

// Stop kills the server (its data is lost); Stop of a stopped server does
// nothing.
func (r *RedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exit
	r.cmd = nil
}

// Restart starts the server again (empty) on its address.
func (r *RedisServer) Restart() error {
	r.Stop()
	var err error
	for range 50 { // the port may linger briefly after the kill
		if err = r.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("restarting redis-server on %s: %w", r.Addr, err)
}

func (r *RedisServer) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	logFile := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", logFile)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer func() { _ = c.Close() }()
	ready := func() error { return c.Ping(context.Background()).Err() }
	if err := waitUp(ready, exited, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		out, _ := os.ReadFile(logFile)
		return fmt.Errorf("redis-server on %s: %w: %s", r.Addr, err, out)
	}
	r.cmd, r.exit = cmd, exited
	return nil
}

// waitUp polls ready until it succeeds, the process exits or the timeout
// passes.
func waitUp(ready func() error, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited (%v)", werr)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %s: %w", timeout, err)
		}
	}
}
