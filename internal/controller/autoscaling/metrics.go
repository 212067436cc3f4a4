package autoscaling

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// decisionMetrics are the controller's Prometheus metrics, on
// controller-runtime's registry (served on the manager's metrics address).
type decisionMetrics struct {
	desired, current, panic *prometheus.GaugeVec
	value                   *prometheus.GaugeVec
	scales                  *prometheus.CounterVec
	cycle                   prometheus.Histogram
}

var policyLabels = []string{"namespace", "policy", "target"}

func newDecisionMetrics() *decisionMetrics {
	m := &decisionMetrics{
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kthena_autoscaling_desired_replicas",
			Help: "Replicas the autoscaler decided for a target (a ModelServing, a role as <modelserving>/<role>, or a heterogeneous policy's total)."}, policyLabels),
		current: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kthena_autoscaling_current_replicas",
			Help: "Replicas of a target when the autoscaler last looked."}, policyLabels),
		panic: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kthena_autoscaling_panic_mode",
			Help: "1 while a target's scaler is in panic mode."}, policyLabels),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kthena_autoscaling_metric_value",
			Help: "The value of a policy metric the autoscaler last saw (mean over pods for pod metrics)."}, append(policyLabels, "metric")),
		scales: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kthena_autoscaling_scale_total",
			Help: "Replica changes the autoscaler wrote, by direction (up, down) and reason."}, append(policyLabels, "direction", "reason")),
		cycle: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kthena_autoscaling_cycle_seconds",
			Help: "Duration of one policy's collect-recommend-scale cycle.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
	}
	m.desired = register(m.desired)
	m.current = register(m.current)
	m.panic = register(m.panic)
	m.value = register(m.value)
	m.scales = register(m.scales)
	m.cycle = register(m.cycle)
	return m
}

// register adds c to controller-runtime's registry, or returns the
// collector already there (several managers in one test process).
func register[T prometheus.Collector](c T) T {
	if err := ctrlmetrics.Registry.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(err) // a name clash with another collector: a programming error
	}
	return c
}

// forget drops every series of a policy.
func (m *decisionMetrics) forget(namespace, policy string) {
	l := prometheus.Labels{"namespace": namespace, "policy": policy}
	m.desired.DeletePartialMatch(l)
	m.current.DeletePartialMatch(l)
	m.panic.DeletePartialMatch(l)
	m.value.DeletePartialMatch(l)
	m.scales.DeletePartialMatch(l)
}
