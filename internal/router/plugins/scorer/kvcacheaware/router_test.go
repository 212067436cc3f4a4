package kvcacheaware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"

	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/testing/simroute"
)

// Through real sockets end to end: a router in standalone mode, configured
// with kvcache-aware (tokenising through the engines' /tokenize), subscribes to three simulated engines' KV events (the
// port from each endpoint's label) and sends every request of a
// conversation to the engine that already holds its prefix, although
// nothing but the engines' events tells it where that is.
func TestRouterRoutesToTheEngineHoldingThePrefix(t *testing.T) {
	tok, err := sharedTok()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cfgs []sim.Config
	var ports []int
	for range 3 {
		ports = append(ports, freePort(t))
		cfgs = append(cfgs, sim.Config{TimeScale: 0.005, Mode: sim.ModeEcho, KVEventsEndpoint: fmt.Sprintf("tcp://*:%d", ports[len(ports)-1])})
	}
	f, err := sim.StartFleet(ctx, sim.FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	require.NoError(t, err)
	defer f.Close()

	fleet := simroute.Fleet{Model: sim.DefaultModel, Route: "m", Addrs: f.Addrs,
		Labels: func(i int) string { return fmt.Sprintf("%q: %q", kvcacheaware.PortLabel, fmt.Sprint(ports[i])) }}
	epFile, cfgFile, err := fleet.Write(t.TempDir(), `scheduler:
  pluginConfig:
  - name: least-request
    args: {maxWaitingRequests: 40}
  - name: kvcache-aware
  plugins:
    Filter: {enabled: [least-request]}
    Score: {enabled: [{name: kvcache-aware, weight: 2}, {name: least-request, weight: 1}]}
`)
	require.NoError(t, err)
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", DebugAddr: "127.0.0.1:0", EndpointsFile: epFile, ConfigFile: cfgFile,
		ScrapeInterval: 50 * time.Millisecond, MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
	require.NoError(t, err)
	defer func() { _ = r.Shutdown(context.Background()) }()

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			require.True(t, time.Now().Before(deadline), "timed out waiting for %s", what)
			time.Sleep(20 * time.Millisecond)
		}
	}
	send := func(url string, msgs []map[string]string) {
		t.Helper()
		model := "m"
		if !strings.Contains(url, r.Addr()) {
			model = sim.DefaultModel
		}
		raw, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 1, "messages": msgs})
		resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	routed := "http://" + r.Addr() + "/v1/chat/completions"
	wait("router ready", func() bool {
		res, err := http.Get("http://" + r.Addr() + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	// The router subscribes to every engine as soon as it knows the
	// endpoints, before any request through it: warm-ups sent to each
	// engine directly show up in its index.
	sizes := func() []kvindex.Size {
		res, err := http.Get("http://" + r.DebugAddr() + "/debug/kvindex")
		require.NoError(t, err)
		defer res.Body.Close()
		var out []kvindex.Size
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
		return out
	}
	for i := range f.Engines {
		n := 0
		wait(fmt.Sprintf("events of engine %d", i), func() bool {
			n++
			send(f.URL(i)+"/v1/chat/completions", user(fmt.Sprintf("warm-up %d %s", n, strings.Repeat("pad ", 12))))
			for _, s := range sizes() {
				for _, p := range s.Pods {
					if p.Pod == fmt.Sprintf("default/e%d", i) && p.Known {
						return true
					}
				}
			}
			return false
		})
	}

	// Engine 1 alone holds a long document.
	doc := strings.Repeat("The contract's clauses, read one by one, say this. ", 80)
	conv := []map[string]string{{"role": "system", "content": doc}, {"role": "user", "content": "Question 0?"}}
	send(f.URL(1)+"/v1/chat/completions", conv)
	wait("the document in the index", func() bool {
		raw, _ := json.Marshal(kvindex.Probe{Messages: []kvindex.ProbeMessage{{Role: "system", Content: doc}, {Role: "user", Content: "Question 0?"}}})
		res, err := http.Post("http://"+r.DebugAddr()+"/debug/kvindex/probe", "application/json", bytes.NewReader(raw))
		require.NoError(t, err)
		defer res.Body.Close()
		var out []kvindex.ProbeResult
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
		for _, pr := range out {
			for _, p := range pr.Pods {
				if p.Pod == "default/e1" && p.MatchedBlocks > 20 {
					return true
				}
			}
		}
		return false
	})

	before := make([]int64, 3)
	for i, e := range f.Engines {
		before[i] = e.Stats().Totals.FinishedRequests
	}
	const turns = 12
	for i := 1; i <= turns; i++ {
		conv = append(conv, map[string]string{"role": "assistant", "content": fmt.Sprintf("Answer %d.", i-1)},
			map[string]string{"role": "user", "content": fmt.Sprintf("Question %d?", i)})
		send(routed, conv)
	}
	var served []int64
	for i, e := range f.Engines {
		served = append(served, e.Stats().Totals.FinishedRequests-before[i])
	}
	require.Equal(t, []int64{0, turns, 0}, served)
}
