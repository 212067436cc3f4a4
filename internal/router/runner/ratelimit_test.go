package runner

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/testing/realserver"
)

// A chat body of "hello" is about 9 input tokens by the router's estimate
// (36 bytes of messages, four bytes a token); the fake engine answers 3
// output tokens.
func limitedRoute(limit string) string {
	return fmt.Sprintf(`kind: ModelRoute
metadata: {name: r}
spec: {modelName: llama, rateLimit: %s, rules: [{targetModels: [{modelServerName: s}]}]}
`, limit)
}

func errType(r resp) string {
	e, _ := r.json["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func TestRateLimitLocal(t *testing.T) {
	e := newEngine(t, "e1")
	eps := endpoints(map[*fakeEngine]string{e: "s"})
	h := start(t, docs(server("s", "", ""), limitedRoute("{inputTokensPerUnit: 20, unit: minute}"), eps), "")
	for i := range 2 {
		if r := h.chat("llama", nil); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	r := h.chat("llama", nil)
	if r.status != http.StatusTooManyRequests || errType(r) != "input_rate_limit" {
		t.Fatalf("third request: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if got := testutil.ToFloat64(h.r.Metrics.RateLimited.WithLabelValues("llama", "input")); got != 1 {
		t.Fatalf("rate limited counter %v", got)
	}

	// Output: 5 per minute; the first answer (3 tokens) leaves 2, the
	// second (3 more) leaves -1: the third request is refused.
	h.writeFile(h.epFile, docs(server("s", "", ""), limitedRoute("{outputTokensPerUnit: 5, unit: minute}"), eps))
	eventually(t, "new limit loaded", func() bool { return h.chat("llama", nil).status == http.StatusOK })
	if r := h.chat("llama", nil); r.status != http.StatusOK {
		t.Fatalf("second request under the output limit: %d %s", r.status, r.body)
	}
	r = h.chat("llama", nil)
	if r.status != http.StatusTooManyRequests || errType(r) != "output_rate_limit" {
		t.Fatalf("over the output limit: %d %s", r.status, r.body)
	}
}

// Two routers share a limit through one Redis; when Redis stops, each
// enforces the limit on its own (counted), and the shared limit holds again
// once Redis is back.
func TestRateLimitGlobal(t *testing.T) {
	redis := realserver.StartRedis(t)
	e := newEngine(t, "e1")
	file := docs(server("s", "", ""), limitedRoute(fmt.Sprintf("{inputTokensPerUnit: 20, unit: hour, global: {redis: {address: %q}}}", redis.Addr)),
		endpoints(map[*fakeEngine]string{e: "s"}))
	a, b := start(t, file, ""), start(t, file, "")
	if r := a.chat("llama", nil); r.status != http.StatusOK {
		t.Fatalf("a: %d %s", r.status, r.body)
	}
	if r := b.chat("llama", nil); r.status != http.StatusOK {
		t.Fatalf("b: %d %s", r.status, r.body)
	}
	for name, h := range map[string]*harness{"a": a, "b": b} {
		if r := h.chat("llama", nil); r.status != http.StatusTooManyRequests || errType(r) != "input_rate_limit" {
			t.Fatalf("%s after the shared limit: %d %s", name, r.status, r.body)
		}
	}

	redis.Stop()
	for i := range 2 { // a's own bucket of the limit starts full
		if r := a.chat("llama", nil); r.status != http.StatusOK {
			t.Fatalf("request %d with Redis down (the limit enforced locally): %d %s", i, r.status, r.body)
		}
	}
	if r := a.chat("llama", nil); r.status != http.StatusTooManyRequests || errType(r) != "input_rate_limit" {
		t.Fatalf("over the limit with Redis down: %d %s", r.status, r.body)
	}
	if got := testutil.ToFloat64(a.r.Metrics.RateLimitStoreErrors); got < 1 {
		t.Fatalf("store errors counted %v", got)
	}
	if err := redis.Restart(); err != nil { // empty: the bucket starts full again
		t.Fatal(err)
	}
	eventually(t, "limit enforced again after Redis is back", func() bool {
		return a.chat("llama", nil).status == http.StatusTooManyRequests
	})
}

// With a trusted tenant header and rateLimit.scope: tenant, each tenant has
// the route's limit to itself; callers without the header share one.
func TestRateLimitPerTenant(t *testing.T) {
	e := newEngine(t, "e1")
	cfg := config.Default + "auth: {tenantHeader: X-Tenant}\nrateLimit: {scope: tenant}\n"
	h := start(t, docs(server("s", "", ""), limitedRoute("{inputTokensPerUnit: 20, unit: minute}"), endpoints(map[*fakeEngine]string{e: "s"})), cfg)
	tenant := func(name string) map[string]string { return map[string]string{"X-Tenant": name} }
	for i := range 2 {
		if r := h.chat("llama", tenant("a")); r.status != http.StatusOK {
			t.Fatalf("a, request %d: %d %s", i, r.status, r.body)
		}
	}
	if r := h.chat("llama", tenant("a")); r.status != http.StatusTooManyRequests {
		t.Fatalf("a over its limit: %d %s", r.status, r.body)
	}
	for i := range 2 {
		if r := h.chat("llama", tenant("b")); r.status != http.StatusOK {
			t.Fatalf("b has its own bucket, request %d: %d %s", i, r.status, r.body)
		}
	}
	for i := range 2 {
		if r := h.chat("llama", nil); r.status != http.StatusOK {
			t.Fatalf("anonymous, request %d: %d %s", i, r.status, r.body)
		}
	}
	if r := h.chat("llama", nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("anonymous callers share one bucket: %d %s", r.status, r.body)
	}

	// Rules on the trusted header: the header is then required.
	h.writeFile(h.cfg, config.Default+"auth: {tenantHeader: X-Tenant, rules: [{models: [llama], subjects: [c]}]}\n")
	eventually(t, "rules loaded", func() bool { return h.chat("llama", tenant("b")).status == http.StatusForbidden })
	if r := h.chat("llama", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("no header with rules: %d %s", r.status, r.body)
	}
	if r := h.chat("llama", tenant("c")); r.status != http.StatusOK {
		t.Fatalf("c is allowed: %d %s", r.status, r.body)
	}
}
