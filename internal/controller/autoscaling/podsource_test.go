package autoscaling

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func TestQuantile(t *testing.T) {
	b := bucketCounts{bounds: []float64{0.1, 0.5, 1, math.Inf(1)}, counts: []float64{50, 90, 100, 100}}
	cases := []struct{ q, want float64 }{{0.5, 0.1}, {0.25, 0.05}, {0.95, 0.75}, {1, 1}}
	for _, c := range cases {
		if got := b.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (bucketCounts{bounds: []float64{1, math.Inf(1)}, counts: []float64{0, 0}}).quantile(0.95); got != 0 {
		t.Errorf("empty histogram quantile = %v, want 0", got)
	}
	if got := (bucketCounts{bounds: []float64{1, math.Inf(1)}, counts: []float64{0, 5}}).quantile(0.95); got != 1 {
		t.Errorf("+Inf bucket quantile = %v, want the largest finite bound", got)
	}
}

func TestCandidateNames(t *testing.T) {
	got := strings.Join(candidateNames("num_requests_waiting"), ",")
	for _, want := range []string{"vllm:num_requests_waiting", "sglang:num_queue_reqs"} {
		if !strings.Contains(got, want) {
			t.Errorf("candidates %s lack %s", got, want)
		}
	}
	if got := candidateNames("vllm:generation_tokens_total"); got[1] != "vllm:generation_tokens" || !strings.Contains(strings.Join(got, ","), "sglang:generation_tokens_total") {
		t.Errorf("counter candidates %v", got)
	}
}

// servePair serves a on 127.77.0.1 and b on 127.77.0.2 at one port (as
// two pods with their own IPs) and returns the port.
func servePair(t *testing.T, a, b http.Handler) int {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		l0, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l0.Addr().(*net.TCPAddr).Port
		_ = l0.Close()
		l1, err1 := net.Listen("tcp", net.JoinHostPort("127.77.0.1", strconv.Itoa(port)))
		l2, err2 := net.Listen("tcp", net.JoinHostPort("127.77.0.2", strconv.Itoa(port)))
		if err1 != nil || err2 != nil {
			for _, l := range []net.Listener{l1, l2} {
				if l != nil {
					_ = l.Close()
				}
			}
			continue
		}
		s1, s2 := &http.Server{Handler: a}, &http.Server{Handler: b}
		go func() { _ = s1.Serve(l1) }()
		go func() { _ = s2.Serve(l2) }()
		t.Cleanup(func() { _ = s1.Close(); _ = s2.Close() })
		return port
	}
	t.Fatal("no free port")
	return 0
}

// engine serves a metrics text the test changes.
type engine struct {
	mu   sync.Mutex
	text string
	code int
}

func (e *engine) set(text string) { e.mu.Lock(); e.text, e.code = text, 200; e.mu.Unlock() }
func (e *engine) fail(code int)   { e.mu.Lock(); e.code = code; e.mu.Unlock() }
func (e *engine) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	w.WriteHeader(e.code)
	fmt.Fprint(w, e.text)
}

func readyPod(name, ip string, restarts int32) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "engine", RestartCount: restarts}}},
	}
}

func histText(name string, le01, le1, inf float64) string {
	return fmt.Sprintf("# TYPE %s histogram\n%s_bucket{le=\"0.1\"} %g\n%s_bucket{le=\"1\"} %g\n%s_bucket{le=\"+Inf\"} %g\n%s_sum 1\n%s_count %g\n",
		name, name, le01, name, le1, name, inf, name, name, inf)
}

func TestPodSourceReadings(t *testing.T) {
	e1, e2 := &engine{}, &engine{}
	port := servePair(t, e1, e2)
	src := newPodSource(defaultPodSourceConfig())
	pods := []*corev1.Pod{readyPod("a", "127.77.0.1", 0), readyPod("b", "127.77.0.2", 0)}
	ms := workloadv1alpha1.MetricSource{Pod: &workloadv1alpha1.PodMetricSource{Port: int32(port)}}
	reqs := []metricRequest{{key: "num_requests_waiting", spec: ms}, {key: "vllm:generation_tokens", spec: ms}, {key: "time_to_first_token_seconds", spec: ms}}
	t0 := time.Unix(1000, 0)
	read := func(at time.Duration) []metricReading {
		return src.read(context.Background(), t0.Add(at), pods, reqs)
	}
	e1.set("vllm:num_requests_waiting{model_name=\"m\"} 3\n# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 100\n" + histText("vllm:time_to_first_token_seconds", 0, 0, 0))
	e2.set("sglang:num_queue_reqs 5\n")
	r := read(0)
	// vLLM and SGLang names of the same signal, one per pod.
	if got := r[0].pods; len(got.values) != 2 || got.values[0]+got.values[1] != 8 || got.missing != 0 {
		t.Fatalf("gauge readings %+v", got)
	}
	if got := r[1].pods; len(got.values) != 0 || got.missing != 2 {
		t.Fatalf("first counter sample must be missing: %+v", got)
	}

	e1.set("vllm:num_requests_waiting NaN\n# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 400\n" + histText("vllm:time_to_first_token_seconds", 50, 100, 100))
	r = read(10 * time.Second)
	if got := r[0].pods; len(got.values) != 1 || got.missing != 1 {
		t.Fatalf("NaN gauge must be missing: %+v", got)
	}
	if got := r[1].pods; len(got.values) != 1 || got.values[0] != 30 {
		t.Fatalf("counter rate %+v, want 30/s", got)
	}
	if got := r[2].pods; len(got.values) != 1 || math.Abs(got.values[0]-0.91) > 1e-9 {
		t.Fatalf("histogram p95 %+v, want 0.91", got)
	}

	// The engine restarted without the container restarting: counters and
	// buckets went down. The reading is missing, not a huge negative rate.
	e1.set("# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 5\n" + histText("vllm:time_to_first_token_seconds", 1, 1, 1))
	r = read(20 * time.Second)
	if got := r[1].pods; len(got.values) != 0 || got.missing != 2 {
		t.Fatalf("counter reset must be missing: %+v", got)
	}
	if got := r[2].pods; len(got.values) != 0 {
		t.Fatalf("histogram reset must be missing: %+v", got)
	}
	e1.set("# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total 25\n" + histText("vllm:time_to_first_token_seconds", 1, 1, 1))
	r = read(30 * time.Second)
	if got := r[1].pods; len(got.values) != 1 || got.values[0] != 2 {
		t.Fatalf("rate after a reset %+v, want 2/s", got)
	}
	if got := r[2].pods; len(got.values) != 1 || got.values[0] != 0 {
		t.Fatalf("idle histogram %+v, want 0", got)
	}

	// A container restart makes the pod unready for a cycle.
	pods[0] = readyPod("a", "127.77.0.1", 1)
	r = read(40 * time.Second)
	if got := r[0].pods; got.unready != 1 {
		t.Fatalf("restarted pod must be unready: %+v", got)
	}
	// A failing endpoint is missing.
	e1.fail(500)
	r = read(50 * time.Second)
	if got := r[1].pods; got.missing != 2 || r[1].err == nil {
		t.Fatalf("failing endpoint %+v", got)
	}
	// A Prometheus metric is not the pod source's to read.
	r = src.read(context.Background(), t0, pods, []metricRequest{{key: "x", spec: workloadv1alpha1.MetricSource{Prometheus: &workloadv1alpha1.PrometheusMetricSource{ServerURL: "http://p", Query: "q"}}}})
	if r[0].err == nil || r[0].pods != nil {
		t.Fatalf("prometheus reading %+v", r[0])
	}
}
