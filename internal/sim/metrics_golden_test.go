package sim

import (
	"bufio"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readGolden reads a testdata list of "name type" lines.
func readGolden(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		require.Len(t, fields, 2, "golden line %q", line)
		out[fields[0]] = fields[1]
	}
	require.NoError(t, sc.Err())
	return out
}

func typeName(f *dto.MetricFamily) string {
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return "counter"
	case dto.MetricType_GAUGE:
		return "gauge"
	case dto.MetricType_HISTOGRAM:
		return "histogram"
	case dto.MetricType_SUMMARY:
		return "summary"
	}
	return "untyped"
}

// checkAgainstGolden asserts that every family the engine exposes under
// the real engine's prefix exists in the real engine with the same type,
// and that the rest use the simulator's own prefix.
func checkAgainstGolden(t *testing.T, fams map[string]*dto.MetricFamily, prefix string, golden map[string]string) int {
	t.Helper()
	n := 0
	for name, f := range fams {
		if !strings.HasPrefix(name, prefix) {
			assert.True(t, strings.HasPrefix(name, "kthena_sim:") || strings.HasPrefix(name, "go_") ||
				strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_"),
				"%s: simulator-only metrics must not borrow an engine prefix", name)
			continue
		}
		want, ok := golden[name]
		if assert.True(t, ok, "%s is not a metric of the real engine", name) {
			assert.Equal(t, want, typeName(f), "%s has the real engine's type", name)
		}
		n++
	}
	return n
}

// TestMetricNamesMatchRealEngines scrapes engines in every role, after
// traffic that fills the labelled series, and compares their metric names
// and types with the lists taken from vLLM's and SGLang's sources.
func TestMetricNamesMatchRealEngines(t *testing.T) {
	vllmGolden := readGolden(t, "testdata/metrics_vllm.golden")
	sglangGolden := readGolden(t, "testdata/metrics_sglang.golden")

	t.Run("vllm", func(t *testing.T) {
		f := startFleet(t, fastConfig(nil),
			fastConfig(func(c *Config) { c.KVRole = RolePrefill; c.KVTransferTimeout = time.Hour }),
			fastConfig(func(c *Config) { c.KVRole = RoleDecode }),
			fastConfig(func(c *Config) { c.KVConnector = ConnectorLMCache }))
		status, _ := postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(nil))
		require.Equal(t, 200, status)
		status, _ = postJSON(t, f.URL(3)+"/v1/chat/completions", chatBody(nil))
		require.Equal(t, 200, status)
		status, resp := postJSON(t, f.URL(1)+"/v1/chat/completions", chatBody(map[string]any{"max_tokens": 1,
			"kv_transfer_params": map[string]any{"do_remote_decode": true}}))
		require.Equal(t, 200, status, "%v", resp)
		status, out := postJSON(t, f.URL(2)+"/v1/chat/completions", chatBody(map[string]any{"kv_transfer_params": resp["kv_transfer_params"]}))
		require.Equal(t, 200, status, "%v", out)
		for i := range f.Engines {
			fams := scrape(t, f.URL(i))
			n := checkAgainstGolden(t, fams, "vllm:", vllmGolden)
			assert.Greater(t, n, 20, "engine %d exposes the usual vLLM metrics", i)
			assert.Contains(t, fams, "vllm:request_success_total")
			assert.NotContains(t, fams, "vllm:request_success", "counters carry _total")
		}
		assert.Contains(t, scrape(t, f.URL(2)), "vllm:nixl_xfer_time_seconds", "a decode engine reports its NIXL transfers")
	})

	t.Run("sglang", func(t *testing.T) {
		f := startFleet(t, fastConfig(func(c *Config) { c.Engine = SGLang }),
			fastConfig(func(c *Config) { c.Engine = SGLang; c.KVRole = RolePrefill; c.KVTransferTimeout = 200 * time.Second }),
			fastConfig(func(c *Config) { c.Engine = SGLang; c.KVRole = RoleDecode }))
		status, _ := postJSON(t, f.URL(0)+"/v1/chat/completions", chatBody(nil))
		require.Equal(t, 200, status)
		host, portStr, err := net.SplitHostPort(f.Addrs[1])
		require.NoError(t, err)
		port, _ := strconv.Atoi(portStr)
		pd := map[string]any{"bootstrap_host": host, "bootstrap_port": port, "bootstrap_room": 99}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			postJSON(t, f.URL(1)+"/v1/chat/completions", chatBody(pd))
		}()
		status, out := postJSON(t, f.URL(2)+"/v1/chat/completions", chatBody(pd))
		wg.Wait()
		require.Equal(t, 200, status, "%v", out)
		for i := range f.Engines {
			fams := scrape(t, f.URL(i))
			n := checkAgainstGolden(t, fams, "sglang:", sglangGolden)
			assert.Greater(t, n, 10, "engine %d exposes the usual SGLang metrics", i)
			assert.Contains(t, fams, "sglang:num_requests_total")
			assert.NotContains(t, fams, "vllm:num_requests_running")
		}
	})
}
