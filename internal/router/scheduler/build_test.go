package scheduler_test

import (
	"strings"
	"testing"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/plugins"
	"github.com/kthena/kthena/internal/router/scheduler"
)

type noHandle struct{}

func TestBuildStrict(t *testing.T) {
	cases := []struct {
		name, yaml, err string
	}{
		{"default", config.Default, ""},
		{"upstream default", config.UpstreamDefault, ""},
		{"unknown plugin", "scheduler:\n  plugins:\n    Score: {enabled: [{name: nope}]}\n", "unknown plugin"},
		{"unknown field", "scheduler:\n  plugin: {}\n", "unknown field"},
		{"bad args", "scheduler:\n  pluginConfig: [{name: least-request, args: {maxWaiting: 3}}]\n  plugins: {}\n", "invalid args"},
		{"negative weight", "scheduler:\n  plugins:\n    Score: {enabled: [{name: gpu-usage, weight: -1}]}\n", "must be >= 0"},
		{"scorer as filter", "scheduler:\n  plugins:\n    Filter: {enabled: [gpu-usage]}\n", "not a filter"},
		{"random combined", "scheduler:\n  plugins:\n    Score: {enabled: [random, gpu-usage]}\n", "random"},
		{"duplicate", "scheduler:\n  plugins:\n    Score: {enabled: [gpu-usage, gpu-usage]}\n", "twice"},
		{"auth accepted", "scheduler: {plugins: {}}\nauth: {jwksUri: https://x}\n", ""},
		{"auth bad uri", "scheduler: {plugins: {}}\nauth: {jwksUri: \"ftp:x\"}\n", "http(s) URL"},
		{"auth rules need jwks", "scheduler: {plugins: {}}\nauth: {rules: [{models: [a]}]}\n", "need auth.jwksUri"},
		{"auth rule without models", "scheduler: {plugins: {}}\nauth: {jwksUri: https://x, rules: [{subjects: [a]}]}\n", "at least one model"},
		{"auth bad glob", "scheduler: {plugins: {}}\nauth: {jwksUri: https://x, rules: [{models: [\"[\"]}]}\n", "bad glob"},
		{"auth short refresh", "scheduler: {plugins: {}}\nauth: {jwksUri: https://x, refreshInterval: 1s}\n", "at least 1m"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.yaml))
			if err == nil {
				_, err = scheduler.Build(plugins.NewRegistry(), cfg.Scheduler, nil, nil)
			}
			if c.err == "" && err != nil {
				t.Fatal(err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err %v, want %q", err, c.err)
			}
		})
	}
}

func TestScorerOrderAndReuse(t *testing.T) {
	cfg, err := config.Parse([]byte(config.Default))
	if err != nil {
		t.Fatal(err)
	}
	reg := plugins.NewRegistry()
	s1, err := scheduler.Build(reg, cfg.Scheduler, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := scheduler.Build(reg, cfg.Scheduler, nil, s1)
	if err != nil {
		t.Fatal(err)
	}
	p1, p2 := s1.Plugins(), s2.Plugins()
	same := 0
	for _, a := range p1 {
		for _, b := range p2 {
			if a == b {
				same++
			}
		}
	}
	if same != len(p1) {
		t.Fatalf("reload reused %d of %d plugin instances", same, len(p1))
	}
}

var _ = noHandle{}
