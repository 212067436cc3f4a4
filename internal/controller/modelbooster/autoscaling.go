package modelbooster

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// The ModelBooster API (upstream's) has no autoscaling field, so a booster
// asks for autoscaling with annotations; max-replicas turns it on.
const (
	// MinReplicasAnnotation is the lower bound (default 1; 0 scales to zero).
	MinReplicasAnnotation = "autoscaling.kthena.io/min-replicas"
	// MaxReplicasAnnotation is the upper bound; setting it generates the policy.
	MaxReplicasAnnotation = "autoscaling.kthena.io/max-replicas"
	// MetricAnnotation is "name=target" of the metric scaled on, read from
	// the engine pods (default num_requests_waiting=10).
	MetricAnnotation = "autoscaling.kthena.io/metric"
)

const defaultMetric = "num_requests_waiting=10"

// scaling is a booster's autoscaling request.
type scaling struct {
	min, max int32
	metric   workloadv1alpha1.AutoscalingPolicyMetric
}

// parseScaling reads the annotations; nil means no autoscaling.
func parseScaling(mb *workloadv1alpha1.ModelBooster) (*scaling, error) {
	a := mb.Annotations
	ann := field.NewPath("metadata", "annotations")
	maxS, ok := a[MaxReplicasAnnotation]
	if !ok {
		for _, k := range []string{MinReplicasAnnotation, MetricAnnotation} {
			if _, set := a[k]; set {
				return nil, field.Required(ann.Key(MaxReplicasAnnotation), "autoscaling needs a maximum when "+k+" is set")
			}
		}
		return nil, nil
	}
	s := &scaling{min: 1}
	n, err := strconv.ParseInt(maxS, 10, 32)
	if err != nil || n < 1 || n > 1000000 {
		return nil, field.Invalid(ann.Key(MaxReplicasAnnotation), maxS, "must be an integer between 1 and 1000000")
	}
	s.max = int32(n)
	if minS, ok := a[MinReplicasAnnotation]; ok {
		n, err := strconv.ParseInt(minS, 10, 32)
		if err != nil || n < 0 || int32(n) > s.max {
			return nil, field.Invalid(ann.Key(MinReplicasAnnotation), minS, fmt.Sprintf("must be an integer between 0 and max-replicas (%d)", s.max))
		}
		s.min = int32(n)
	}
	metric := defaultMetric
	if m, ok := a[MetricAnnotation]; ok {
		metric = m
	}
	name, target, _ := strings.Cut(metric, "=")
	q, err := resource.ParseQuantity(strings.TrimSpace(target))
	if name = strings.TrimSpace(name); name == "" || err != nil || q.Sign() <= 0 {
		return nil, field.Invalid(ann.Key(MetricAnnotation), metric, "must be name=target, the target a positive quantity (e.g. num_requests_waiting=10)")
	}
	s.metric = workloadv1alpha1.AutoscalingPolicyMetric{Name: name, TargetValue: q}
	return s, nil
}

func (s *scaling) clamp(n int32) int32 { return min(max(n, s.min), s.max) }

// buildAutoscalingPolicy generates the policy scaling the ModelServing:
// whole serving groups for an aggregated backend, each role within the
// same bounds for a prefill/decode one. The metric is read from the engine
// port, where vLLM and SGLang serve /metrics.
func buildAutoscalingPolicy(p *plan) *workloadv1alpha1.AutoscalingPolicy {
	if p.scaling == nil {
		return nil
	}
	mb, s := p.mb, p.scaling
	name := servingName(mb)
	sources := map[string]workloadv1alpha1.MetricSource{s.metric.Name: {Pod: &workloadv1alpha1.PodMetricSource{Port: p.port, Uri: "/metrics"}}}
	pol := &workloadv1alpha1.AutoscalingPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: workloadv1alpha1.GroupVersion.String(), Kind: "AutoscalingPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mb.Namespace, Labels: generatedLabels(mb)},
		Spec: workloadv1alpha1.AutoscalingPolicySpec{
			TolerancePercent: 10,
			Metrics:          []workloadv1alpha1.AutoscalingPolicyMetric{s.metric},
			Behavior:         defaultBehavior(),
		},
	}
	ref := corev1.ObjectReference{Kind: "ModelServing", Name: name}
	if !p.disaggregated {
		pol.Spec.HomogeneousTarget = &workloadv1alpha1.HomogeneousTarget{
			Target:      workloadv1alpha1.Target{TargetRef: ref, MetricSources: sources},
			MinReplicas: s.min, MaxReplicas: s.max,
		}
		return pol
	}
	roles := map[string]workloadv1alpha1.RoleScalingParam{}
	for _, w := range p.workers {
		roles[w.role] = workloadv1alpha1.RoleScalingParam{MinReplicas: s.min, MaxReplicas: s.max, MetricSources: sources}
	}
	pol.Spec.DisaggregatedTarget = &workloadv1alpha1.DisaggregatedTarget{TargetRef: ref, Roles: roles}
	return pol
}

// defaultBehavior is written out in full (the admission defaults) so the
// policy behaves the same whether or not the defaulting webhook runs.
func defaultBehavior() workloadv1alpha1.AutoscalingPolicyBehavior {
	d := func(t time.Duration) *metav1.Duration { return &metav1.Duration{Duration: t} }
	stable := func(instances int32, window time.Duration) workloadv1alpha1.AutoscalingPolicyStablePolicy {
		return workloadv1alpha1.AutoscalingPolicyStablePolicy{Instances: ptrTo(instances), Percent: ptrTo(int32(100)), Period: d(time.Minute),
			SelectPolicy: workloadv1alpha1.SelectPolicyOr, StabilizationWindow: d(window)}
	}
	return workloadv1alpha1.AutoscalingPolicyBehavior{
		ScaleUp: workloadv1alpha1.AutoscalingPolicyScaleUpPolicy{
			StablePolicy: stable(4, 0),
			PanicPolicy:  workloadv1alpha1.AutoscalingPolicyPanicPolicy{Percent: ptrTo(int32(0)), PanicThresholdPercent: ptrTo(int32(200)), PanicModeHold: d(0)},
		},
		ScaleDown: stable(0, 5*time.Minute),
	}
}

// keepScaledReplicas carries the autoscaler's replica counts into the
// generated ModelServing: with a policy, the counts are the autoscaler's
// to write (spec.replicas, or each role's replicas, which sit in an atomic
// list the controller applies whole), and applying the booster's would
// undo every scaling step.
func keepScaledReplicas(p *plan, ms, live *workloadv1alpha1.ModelServing) {
	if p.scaling == nil {
		return
	}
	if !p.disaggregated {
		n := p.scaling.clamp(*ms.Spec.Replicas)
		if live != nil && live.Spec.Replicas != nil {
			n = *live.Spec.Replicas
		}
		ms.Spec.Replicas = ptrTo(n)
		return
	}
	for i := range ms.Spec.Template.Roles {
		r := &ms.Spec.Template.Roles[i]
		n := p.scaling.clamp(*r.Replicas)
		if live != nil {
			for _, lr := range live.Spec.Template.Roles {
				if lr.Name == r.Name && lr.Replicas != nil {
					n = *lr.Replicas
				}
			}
		}
		r.Replicas = ptrTo(n)
	}
}
