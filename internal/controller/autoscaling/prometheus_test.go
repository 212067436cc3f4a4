package autoscaling

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func TestPromValue(t *testing.T) {
	sample := func(v float64, labels ...string) *model.Sample {
		m := model.Metric{}
		for i := 0; i+1 < len(labels); i += 2 {
			m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
		}
		return &model.Sample{Metric: m, Value: model.SampleValue(v)}
	}
	cases := []struct {
		name    string
		v       model.Value
		want    float64
		wantErr string
	}{
		{"scalar", &model.Scalar{Value: 4.5}, 4.5, ""},
		{"one sample", model.Vector{sample(7, "job", "a")}, 7, ""},
		{"zero is a value", model.Vector{sample(0)}, 0, ""},
		{"no series", model.Vector{}, 0, "no series"},
		{"several series", model.Vector{sample(1, "pod", "a"), sample(2, "pod", "b")}, 0, "2 series, want one"},
		{"range vector", model.Matrix{&model.SampleStream{Values: []model.SamplePair{{Value: 1}}}}, 0, "range vector"},
		{"string", &model.String{Value: "x"}, 0, "want a scalar or an instant vector"},
		{"NaN", &model.Scalar{Value: model.SampleValue(math.NaN())}, 0, "NaN"},
		{"+Inf", model.Vector{sample(math.Inf(1))}, 0, "+Inf"},
		{"negative", &model.Scalar{Value: -3}, 0, "negative"},
		{"nil", nil, 0, "no result"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := promValue(c.v)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("promValue = %v, %v; want an error with %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("promValue = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestValidateServerURL(t *testing.T) {
	for _, ok := range []string{"http://prometheus:9090", "https://p.example.com/prom/", "http://10.0.0.1:9090"} {
		if err := validateServerURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"prometheus:9090":        "http:// or https://",
		"ftp://p:9090":           "http:// or https://",
		"http://":                "no host",
		"/api/v1":                "http:// or https://",
		"http://p:9090/%zz":      "not a URL",
		"  http://p:9090 spaced": "not a URL",
	} {
		if err := validateServerURL(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", bad, err, want)
		}
	}
}

// fakePrometheus answers /api/v1/query with the JSON body set for each
// query, and counts the queries it was asked.
type fakePrometheus struct {
	mu      sync.Mutex
	answers map[string]string // query -> "<status code> <body>"
	asked   map[string]int
	delay   time.Duration
}

func (f *fakePrometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	_ = r.ParseForm()
	q := r.Form.Get("query")
	f.mu.Lock()
	f.asked[q]++
	answer, ok := f.answers[q]
	delay := f.delay
	f.mu.Unlock()
	time.Sleep(delay)
	if !ok {
		answer = `200 {"status":"success","data":{"resultType":"vector","result":[]}}`
	}
	var code int
	var body string
	_, _ = fmt.Sscanf(answer, "%d", &code)
	body = answer[strings.Index(answer, " ")+1:]
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprint(w, body)
}

func (f *fakePrometheus) count(q string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[q]
}

func vectorJSON(values ...string) string {
	var rs []string
	for i, v := range values {
		rs = append(rs, fmt.Sprintf(`{"metric":{"pod":"p%d"},"value":[1700000000,"%s"]}`, i, v))
	}
	return `200 {"status":"success","data":{"resultType":"vector","result":[` + strings.Join(rs, ",") + `]}}`
}

func promReq(key, server, query string) metricRequest {
	return metricRequest{key: key, spec: workloadv1alpha1.MetricSource{Prometheus: &workloadv1alpha1.PrometheusMetricSource{ServerURL: server, Query: query}}}
}

func TestPromSourceReadings(t *testing.T) {
	fake := &fakePrometheus{asked: map[string]int{}, answers: map[string]string{
		"one":     vectorJSON("12.5"),
		"scalar":  `200 {"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}`,
		"two":     vectorJSON("1", "2"),
		"nan":     vectorJSON("NaN"),
		"matrix":  `200 {"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"]]}]}}`,
		"bad(":    `400 {"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}`,
		"broken":  `503 upstream unavailable`,
		"garbage": `200 not json`,
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	clients := newPromClients()
	src := newPromSource(clients, logr.Discard())
	reqs := []metricRequest{
		promReq("a", srv.URL, "one"),
		promReq("b", srv.URL+"/", "scalar"),
		promReq("c", srv.URL, "two"),
		promReq("d", srv.URL, "nan"),
		promReq("e", srv.URL, "matrix"),
		promReq("f", srv.URL, "bad("),
		promReq("g", srv.URL, "broken"),
		promReq("h", srv.URL, "absent"),
		promReq("i", srv.URL, "garbage"),
		promReq("j", srv.URL, "one"), // the same query again: asked once
		promReq("k", "not-a-url", "one"),
	}
	r := src.read(context.Background(), time.Unix(1700000000, 0), nil, reqs)
	if r[0].total == nil || *r[0].total != 12.5 || r[0].err != nil || r[0].pods != nil {
		t.Fatalf("one-sample vector: %+v", r[0])
	}
	if r[1].total == nil || *r[1].total != 3 {
		t.Fatalf("scalar: %+v", r[1])
	}
	wantErr := map[int]string{
		2: "2 series", 3: "NaN", 4: "range vector", 5: "parse error", 6: "server error: 503",
		7: "no series", 8: "bad_response", 10: "http:// or https://",
	}
	for i, want := range wantErr {
		if r[i].total != nil || r[i].err == nil || !strings.Contains(r[i].err.Error(), want) {
			t.Errorf("%s: %+v, want a missing reading with %q", reqs[i].key, r[i], want)
		}
		if i != 10 && !strings.Contains(r[i].err.Error(), fmt.Sprintf("query %q", reqs[i].spec.Prometheus.Query)) {
			t.Errorf("%s: error %q does not name the query", reqs[i].key, r[i].err)
		}
	}
	if r[9].total == nil || *r[9].total != 12.5 || r[9].external != r[0].external {
		t.Fatalf("repeated query: %+v", r[9])
	}
	// Within a cycle a query runs once, whichever unit asks.
	src.read(context.Background(), time.Unix(1700000000, 0), nil, reqs[:1])
	if n := fake.count("one"); n != 1 {
		t.Fatalf("query ran %d times in one cycle, want 1", n)
	}
	// The next cycle asks again, through the same client.
	r = newPromSource(clients, logr.Discard()).read(context.Background(), time.Unix(1700000015, 0), nil, reqs[:2])
	if n := fake.count("one"); n != 2 || r[0].total == nil {
		t.Fatalf("next cycle: query ran %d times, reading %+v", n, r[0])
	}
	if n := len(clients.byURL); n != 1 {
		t.Fatalf("%d clients for one server, want 1", n)
	}
}

func TestPromSourceUnreachableAndSlow(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	_ = l.Close()

	fake := &fakePrometheus{asked: map[string]int{}, answers: map[string]string{"q1": vectorJSON("1"), "q2": vectorJSON("2")}, delay: 300 * time.Millisecond}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	clients := newPromClients()
	clients.timeout = 100 * time.Millisecond
	src := newPromSource(clients, logr.Discard())
	r := src.read(context.Background(), time.Now(), nil, []metricRequest{promReq("a", dead, "q1"), promReq("b", srv.URL, "q1")})
	if r[0].err == nil || !strings.Contains(r[0].err.Error(), "connection refused") {
		t.Fatalf("unreachable server: %+v", r[0])
	}
	if r[1].err == nil || !strings.Contains(r[1].err.Error(), "no answer within 100ms") {
		t.Fatalf("slow server: %+v", r[1])
	}
	// A server that did not answer is not asked again this cycle.
	start := time.Now()
	r = src.read(context.Background(), time.Now(), nil, []metricRequest{promReq("c", srv.URL, "q2")})
	if r[0].err == nil || !strings.Contains(r[0].err.Error(), "no answer within") || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("second query to a slow server: %+v after %v", r[0], time.Since(start))
	}
	if n := fake.count("q2"); n != 0 {
		t.Fatalf("a server that timed out was asked again in the same cycle (%d)", n)
	}
}

func TestSplitSourceKeepsOrder(t *testing.T) {
	fake := &fakePrometheus{asked: map[string]int{}, answers: map[string]string{"q": vectorJSON("5")}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	pod := fakeSource(func(reqs []metricRequest) []metricReading {
		out := make([]metricReading, len(reqs))
		for i, r := range reqs {
			if r.spec.Prometheus != nil {
				t.Errorf("pod source got a Prometheus request %s", r.key)
			}
			out[i] = metricReading{pods: &podReadings{values: []float64{float64(len(r.key))}}}
		}
		return out
	})
	s := splitSource{pod: pod, prom: newPromSource(newPromClients(), logr.Discard())}
	r := s.read(context.Background(), time.Now(), nil, []metricRequest{{key: "x"}, promReq("p", srv.URL, "q"), {key: "yyy"}})
	if r[0].pods == nil || r[0].pods.values[0] != 1 || r[1].total == nil || *r[1].total != 5 || r[2].pods == nil || r[2].pods.values[0] != 3 {
		t.Fatalf("readings out of order: %+v", r)
	}
}

type fakeSource func(reqs []metricRequest) []metricReading

func (f fakeSource) read(_ context.Context, _ time.Time, _ []*corev1.Pod, reqs []metricRequest) []metricReading {
	return f(reqs)
}

func TestPoolWholeTargetValues(t *testing.T) {
	ext := func(key string, v float64) metricReading { return metricReading{external: key, total: &v} }
	failedExt := func(key, msg string) metricReading {
		return metricReading{external: key, err: fmt.Errorf("%s", msg)}
	}
	pods := func(vals ...float64) metricReading { return metricReading{pods: &podReadings{values: vals}} }
	cases := []struct {
		name    string
		units   [][]metricReading
		want    *float64
		wantErr string
	}{
		{"the same query for every target counts once", [][]metricReading{{ext("s\nq", 30)}, {ext("s\nq", 30)}}, fp(30), ""},
		{"distinct queries are summed", [][]metricReading{{ext("s\nq1", 10)}, {ext("s\nq2", 25)}}, fp(35), ""},
		{"one failed query: no value", [][]metricReading{{ext("s\nq1", 10)}, {failedExt("s\nq2", "q2: no series")}}, nil, "q2: no series"},
		{"the same failure is reported once", [][]metricReading{{failedExt("s\nq", "boom")}, {failedExt("s\nq", "boom")}}, nil, "boom"},
		{"pods and Prometheus mixed", [][]metricReading{{ext("s\nq", 10)}, {pods(1, 2)}}, nil, "from Prometheus for some targets and from pods for others"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := pool(c.units, 1)[0]
			switch {
			case c.want != nil && (got.total == nil || *got.total != *c.want):
				t.Fatalf("pooled %+v, want %v", got, *c.want)
			case c.want == nil && got.total != nil:
				t.Fatalf("pooled value %v, want none", *got.total)
			case c.wantErr == "" && got.err != nil:
				t.Fatalf("pooled error %v", got.err)
			case c.wantErr != "" && (got.err == nil || !strings.Contains(got.err.Error(), c.wantErr)):
				t.Fatalf("pooled error %v, want %q", got.err, c.wantErr)
			case c.wantErr == "boom" && got.err.Error() != "boom":
				t.Fatalf("pooled error %q repeats", got.err)
			case got.pods != nil:
				t.Fatalf("pooled pod readings %+v for a Prometheus metric", got.pods)
			}
		})
	}
	// Pod readings still pool.
	got := pool([][]metricReading{{pods(1, 2)}, {pods(3)}}, 1)[0]
	if got.pods == nil || len(got.pods.values) != 3 || got.external != "" {
		t.Fatalf("pooled pods %+v", got)
	}
}

func TestEvaluatePrometheusMetric(t *testing.T) {
	m := []workloadv1alpha1.AutoscalingPolicyMetric{{Name: "qps", TargetValue: resource.MustParse("10")}}
	ext := func(v float64) []metricReading { return []metricReading{{external: "s\nq", total: &v}} }
	cases := []struct {
		name    string
		current int32
		value   float64
		want    int32
	}{
		{"from zero", 0, 25, 3},
		{"idle at zero stays at zero", 0, 0, 0},
		{"a little load wakes a target at zero", 0, 0.5, 1},
		{"the value is for the whole target, not per replica", 4, 25, 3},
		{"within tolerance of the current count", 2, 21, 2},
		{"just outside tolerance", 2, 22.5, 3},
		{"to zero", 3, 0, 0},
		{"capped at max", 1, 1000, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := evaluate(c.current, 0, 6, 0.1, m, ext(c.value), 1)
			if !ev.ok || ev.recommended != c.want {
				t.Fatalf("evaluate = %d (ok %v), want %d", ev.recommended, ev.ok, c.want)
			}
			if s := ev.summary(); !strings.HasPrefix(s, "qps="+fmtFloat(c.value)+"/10 [prometheus]") {
				t.Fatalf("summary %q", s)
			}
		})
	}
}

func TestEvaluateMissingMetricHoldsScaleDown(t *testing.T) {
	m := []workloadv1alpha1.AutoscalingPolicyMetric{
		{Name: "num_requests_waiting", TargetValue: resource.MustParse("10")},
		{Name: "qps", TargetValue: resource.MustParse("10")},
	}
	missing := metricReading{external: "s\nq", err: fmt.Errorf("prometheus s, query \"q\": no series")}
	low := metricReading{pods: &podReadings{values: []float64{1, 1, 1, 1}}}
	high := metricReading{pods: &podReadings{values: []float64{30, 30, 30, 30}}}

	ev := evaluate(4, 1, 20, 0.1, m, []metricReading{low, missing}, 1)
	if !ev.ok || ev.recommended != 4 {
		t.Fatalf("a missing metric must hold a scale-down: %d (ok %v)", ev.recommended, ev.ok)
	}
	if !ev.failed() || !strings.Contains(ev.summary(), "qps=? (prometheus s, query \"q\": no series)") {
		t.Fatalf("summary %q, failed %v", ev.summary(), ev.failed())
	}
	ev = evaluate(4, 1, 20, 0.1, m, []metricReading{high, missing}, 1)
	if ev.recommended != 12 {
		t.Fatalf("a missing metric must not hold a scale-up: %d", ev.recommended)
	}
	// Above the maximum the bound still applies.
	ev = evaluate(30, 1, 20, 0.1, m, []metricReading{low, missing}, 1)
	if ev.recommended != 20 {
		t.Fatalf("above max: %d, want 20", ev.recommended)
	}
	// Only one failing metric: no recommendation at all.
	ev = evaluate(4, 1, 20, 0.1, m[1:], []metricReading{missing}, 1)
	if ev.ok || ev.recommended != 4 {
		t.Fatalf("only a failing metric: %d (ok %v)", ev.recommended, ev.ok)
	}
}
