package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/tokenizer"
	"github.com/openai/openai-go"
	"github.com/openai/openai-go/option"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// fastConfig runs the default profile 200x faster than real time.
func fastConfig(mut func(*Config)) Config {
	c := Config{TimeScale: 0.005, Mode: ModeEcho}
	if mut != nil {
		mut(&c)
	}
	return c
}

// sharedTokenizer loads the BPE ranks once for the whole test binary.
var sharedTokenizer = sync.OnceValues(func() (*tokenizer.Tokenizer, error) { return tokenizer.New("") })

func startFleet(t *testing.T, cfgs ...Config) *Fleet {
	t.Helper()
	tok, err := sharedTokenizer()
	require.NoError(t, err)
	f, err := StartFleet(context.Background(), FleetOptions{Logger: logr.Discard(), Tokenizer: tok}, cfgs...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func client(f *Fleet, i int) openai.Client {
	return openai.NewClient(option.WithBaseURL(f.URL(i)+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// scrape parses /metrics with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

// value is the value of the first series of a family (gauge, counter or
// histogram sum).
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "metric %s exposed", name)
	m := f.GetMetric()[0]
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Histogram != nil:
		return m.GetHistogram().GetSampleSum()
	}
	return 0
}

func histCount(t *testing.T, fams map[string]*dto.MetricFamily, name string) uint64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "metric %s exposed", name)
	return f.GetMetric()[0].GetHistogram().GetSampleCount()
}

func postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(t, err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]any{}
	_ = json.Unmarshal(data, &out)
	if len(out) == 0 {
		out["text"] = string(data)
	}
	return resp.StatusCode, out
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
