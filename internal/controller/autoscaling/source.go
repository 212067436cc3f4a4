package autoscaling

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// metricRequest asks a source for one metric of a scaling unit.
type metricRequest struct {
	// key is the metric's name in spec.metrics.
	key string
	// spec says where the metric is read.
	spec workloadv1alpha1.MetricSource
}

// metricSource reads metrics of one scaling unit for one cycle, as per-pod
// readings (podSource, the engine-pod scraper) or one whole-target value
// (promSource, spec.metricSources[].prometheus); splitSource sends each
// request to its kind. A router-signal source (the router's per-model queue
// and in-flight counts) would fit behind it too; it is not built.
type metricSource interface {
	// read returns one reading per request, in order. pods are the unit's
	// candidate pods (entry pods of the ModelServing or of one role); a
	// source that does not read pods ignores them.
	read(ctx context.Context, now time.Time, pods []*corev1.Pod, reqs []metricRequest) []metricReading
}

// selectPods narrows pods to those a pod metric source's labelSelector
// matches; a nil selector keeps every pod.
func selectPods(pods []*corev1.Pod, sel labels.Selector) []*corev1.Pod {
	if sel == nil || sel.Empty() {
		return pods
	}
	var out []*corev1.Pod
	for _, p := range pods {
		if sel.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}
