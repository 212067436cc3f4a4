package autoscaling

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func TestRequestsPerReplica(t *testing.T) {
	m := func(name, target string) workloadv1alpha1.AutoscalingPolicyMetric {
		return workloadv1alpha1.AutoscalingPolicyMetric{Name: name, TargetValue: resource.MustParse(target)}
	}
	pod := func(series string) workloadv1alpha1.MetricSource {
		return workloadv1alpha1.MetricSource{Pod: &workloadv1alpha1.PodMetricSource{Name: series}}
	}
	pol := &workloadv1alpha1.AutoscalingPolicy{}
	for _, tc := range []struct {
		name    string
		metrics []workloadv1alpha1.AutoscalingPolicyMetric
		sources map[string]workloadv1alpha1.MetricSource
		ann     string
		want    float64
	}{
		{"running and waiting by generic name", []workloadv1alpha1.AutoscalingPolicyMetric{m("num_requests_running", "4"), m("num_requests_waiting", "2")}, nil, "", 6},
		{"engine series names", []workloadv1alpha1.AutoscalingPolicyMetric{m("queue", "3"), m("busy", "5")},
			map[string]workloadv1alpha1.MetricSource{"queue": pod("vllm:num_requests_waiting"), "busy": pod("sglang:num_running_reqs")}, "", 8},
		{"other metrics do not count", []workloadv1alpha1.AutoscalingPolicyMetric{m("kv_cache_usage", "0.8"), m("num_requests_waiting", "10")}, nil, "", 10},
		{"prometheus is not read as requests", []workloadv1alpha1.AutoscalingPolicyMetric{m("num_requests_waiting", "10")},
			map[string]workloadv1alpha1.MetricSource{"num_requests_waiting": {Prometheus: &workloadv1alpha1.PrometheusMetricSource{ServerURL: "http://p", Query: "q"}}}, "", 0},
		{"no request metric", []workloadv1alpha1.AutoscalingPolicyMetric{m("kv_cache_usage", "0.8")}, nil, "", 0},
		{"annotation wins", []workloadv1alpha1.AutoscalingPolicyMetric{m("num_requests_waiting", "10")}, nil, "16", 16},
		{"bad annotation ignored", []workloadv1alpha1.AutoscalingPolicyMetric{m("num_requests_waiting", "10")}, nil, "-1", 10},
	} {
		pol.Annotations = nil
		if tc.ann != "" {
			pol.Annotations = map[string]string{RequestsPerReplicaAnnotation: tc.ann}
		}
		if got := requestsPerReplica(pol, tc.metrics, tc.sources); got != tc.want {
			t.Errorf("%s: %g, want %g", tc.name, got, tc.want)
		}
	}
}

func TestWakeUpCollect(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(at time.Time, demand string) *workloadv1alpha1.ModelServing {
		a := map[string]string{ScaleFromZeroAnnotation: at.Format(time.RFC3339Nano)}
		if demand != "" {
			a[ScaleFromZeroDemandAnnotation] = demand
		}
		return &workloadv1alpha1.ModelServing{ObjectMeta: metav1.ObjectMeta{Annotations: a}}
	}
	u := &unit{}
	var w wakeUp
	w.collect(u, ms(t0, "46"), &metav1.Time{Time: t0.Add(time.Second)})
	if w.pending() {
		t.Fatal("a request older than the last scale is pending")
	}
	w.collect(u, ms(t0.Add(2*time.Second), "46"), &metav1.Time{Time: t0.Add(time.Second)})
	if !w.pending() || w.demand != 46 || w.size(6) != 8 || w.size(0) != 1 {
		t.Fatalf("wake %+v size %d", w, w.size(6))
	}
	// Acted on: the same request does not count again.
	u.wokeAt = w.at
	var again wakeUp
	again.collect(u, ms(t0.Add(2*time.Second), "46"), &metav1.Time{Time: t0.Add(time.Second)})
	if again.pending() {
		t.Fatal("a request acted on is pending again")
	}
	// No or bad demand: one replica.
	var bad wakeUp
	bad.collect(&unit{}, ms(t0, "lots"), nil)
	if !bad.pending() || bad.size(6) != 1 {
		t.Fatalf("bad demand %+v", bad)
	}
}
