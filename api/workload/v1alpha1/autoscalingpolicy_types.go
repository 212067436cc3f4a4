package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AutoscalingPolicySpec says what to scale, on which metrics, and how fast.
// Exactly one of homogeneousTarget, heterogeneousTarget and disaggregatedTarget is set.
//
// +kubebuilder:validation:XValidation:rule="[has(self.homogeneousTarget), has(self.heterogeneousTarget), has(self.disaggregatedTarget)].filter(x, x).size() == 1",message="exactly one of homogeneousTarget, heterogeneousTarget or disaggregatedTarget must be set"
type AutoscalingPolicySpec struct {
	// TolerancePercent is the relative gap between the current and the
	// recommended replica count below which nothing is scaled.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=10
	TolerancePercent int32 `json:"tolerancePercent"`

	// Metrics are the signals and their per-replica target values. Roles of a
	// disaggregated target may override them.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Metrics []AutoscalingPolicyMetric `json:"metrics,omitempty"`

	// Behavior limits how fast replicas change.
	// +optional
	Behavior AutoscalingPolicyBehavior `json:"behavior"`

	// HomogeneousTarget scales one ModelServing as a whole.
	// +optional
	HomogeneousTarget *HomogeneousTarget `json:"homogeneousTarget,omitempty"`

	// HeterogeneousTarget spreads replicas over several ModelServings of
	// different cost (for example different accelerators), cheapest first.
	// +optional
	HeterogeneousTarget *HeterogeneousTarget `json:"heterogeneousTarget,omitempty"`

	// DisaggregatedTarget scales the roles of one ModelServing (for example
	// prefill and decode) together, within a ratio.
	// +optional
	DisaggregatedTarget *DisaggregatedTarget `json:"disaggregatedTarget,omitempty"`
}

// AutoscalingPolicyMetric is a signal and the value one replica should carry.
type AutoscalingPolicyMetric struct {
	// Name is the metric key; metricSources says where it is read.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// TargetValue is the value per replica the autoscaler aims at.
	TargetValue resource.Quantity `json:"targetValue"`
}

// AutoscalingPolicyBehavior limits scale-up and scale-down.
type AutoscalingPolicyBehavior struct {
	// +optional
	ScaleUp AutoscalingPolicyScaleUpPolicy `json:"scaleUp"`
	// +optional
	ScaleDown AutoscalingPolicyStablePolicy `json:"scaleDown"`
}

// AutoscalingPolicyScaleUpPolicy has a stable policy and a panic policy for bursts.
type AutoscalingPolicyScaleUpPolicy struct {
	// +optional
	StablePolicy AutoscalingPolicyStablePolicy `json:"stablePolicy"`
	// +optional
	PanicPolicy AutoscalingPolicyPanicPolicy `json:"panicPolicy"`
}

// AutoscalingPolicyStablePolicy bounds the change per period.
type AutoscalingPolicyStablePolicy struct {
	// Instances is the largest change in replicas per period.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=1
	Instances *int32 `json:"instances,omitempty"`

	// Percent is the largest change per period as a percentage of replicas.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=100
	Percent *int32 `json:"percent,omitempty"`

	// Period is the window the bounds apply to.
	// +optional
	// +kubebuilder:default="15s"
	Period *metav1.Duration `json:"period,omitempty"`

	// SelectPolicy combines the bounds: Or takes the larger change, And the smaller.
	// +optional
	// +kubebuilder:default=Or
	SelectPolicy SelectPolicyType `json:"selectPolicy,omitempty"`

	// StabilizationWindow is how far back recommendations are remembered to
	// damp oscillation.
	// +optional
	StabilizationWindow *metav1.Duration `json:"stabilizationWindow,omitempty"`
}

// SelectPolicyType combines the instance and percent bounds.
// +kubebuilder:validation:Enum=Or;And
type SelectPolicyType string

const (
	SelectPolicyOr  SelectPolicyType = "Or"
	SelectPolicyAnd SelectPolicyType = "And"
)

// AutoscalingPolicyPanicPolicy scales up fast when load jumps.
type AutoscalingPolicyPanicPolicy struct {
	// Percent is the largest scale-up per period in panic mode.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=1000
	Percent *int32 `json:"percent,omitempty"`

	// Period is the window the bound applies to.
	Period metav1.Duration `json:"period"`

	// PanicThresholdPercent: panic starts when the recommendation reaches this
	// percentage of the current replicas.
	// +optional
	// +kubebuilder:validation:Minimum=110
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=200
	PanicThresholdPercent *int32 `json:"panicThresholdPercent,omitempty"`

	// PanicModeHold is how long panic mode lasts; 0 turns panic off.
	// +optional
	// +kubebuilder:default="60s"
	PanicModeHold *metav1.Duration `json:"panicModeHold,omitempty"`
}

// Target is a ModelServing and where its metrics come from.
type Target struct {
	// TargetRef is the scaled object; only kind ModelServing is supported.
	TargetRef corev1.ObjectReference `json:"targetRef"`

	// MetricSources maps a metric name of spec.metrics to where it is read.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	MetricSources map[string]MetricSource `json:"metricSources,omitempty"`
}

// MetricSource is exactly one of a pod scrape or a Prometheus query.
//
// +kubebuilder:validation:XValidation:rule="has(self.pod) || has(self.prometheus)",message="one of pod or prometheus must be set"
// +kubebuilder:validation:XValidation:rule="!(has(self.pod) && has(self.prometheus))",message="pod and prometheus are mutually exclusive"
type MetricSource struct {
	// +optional
	Pod *PodMetricSource `json:"pod,omitempty"`
	// +optional
	Prometheus *PrometheusMetricSource `json:"prometheus,omitempty"`
}

// PodMetricSource scrapes a series from each target pod's metrics endpoint.
type PodMetricSource struct {
	// Name is the series to read; defaults to the metric key.
	// +optional
	Name string `json:"name,omitempty"`

	// Uri is the metrics path.
	// +optional
	// +kubebuilder:default="/metrics"
	Uri string `json:"uri,omitempty"` //nolint:revive // wire name fixed by upstream

	// Port is the metrics port.
	// +optional
	// +kubebuilder:default=8100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// LabelSelector narrows the scraped pods further.
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// PrometheusMetricSource reads a metric with a PromQL instant query that
// returns a scalar or a one-sample vector.
type PrometheusMetricSource struct {
	// ServerURL is the Prometheus HTTP API root.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:Format=uri
	ServerURL string `json:"serverURL"`

	// Query is the PromQL expression.
	// +kubebuilder:validation:MinLength=1
	Query string `json:"query"`

	// Auth is reserved for Prometheus authentication.
	// +optional
	Auth *PrometheusAuth `json:"auth,omitempty"`
}

// PrometheusAuth is reserved for Prometheus authentication settings.
type PrometheusAuth struct{}

// HomogeneousTarget scales one ModelServing between bounds.
type HomogeneousTarget struct {
	// +optional
	Target Target `json:"target,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinReplicas int32 `json:"minReplicas"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxReplicas int32 `json:"maxReplicas"`
}

// HeterogeneousTarget spreads replicas over ModelServings of different cost.
type HeterogeneousTarget struct {
	// Params are the candidate ModelServings with their cost and bounds.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Params []HeterogeneousTargetParam `json:"params,omitempty"`

	// CostExpansionRatePercent is the growth factor of the capacity blocks
	// each target is filled in (200 = blocks of 1, 2, 4, ...).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=200
	CostExpansionRatePercent int32 `json:"costExpansionRatePercent,omitempty"`
}

// HeterogeneousTargetParam is one candidate ModelServing of a heterogeneous target.
type HeterogeneousTargetParam struct {
	// +optional
	Target Target `json:"target,omitempty"`
	// Cost is the relative cost of one replica.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Cost int32 `json:"cost,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinReplicas int32 `json:"minReplicas"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxReplicas int32 `json:"maxReplicas"`
}

// DisaggregatedTarget scales the roles of one ModelServing.
//
// +kubebuilder:validation:XValidation:rule="!has(self.ratioConstraint) || size(self.roles) >= 2",message="ratioConstraint needs two roles",fieldPath=".ratioConstraint"
type DisaggregatedTarget struct {
	// TargetRef is the ModelServing whose roles are scaled.
	TargetRef corev1.ObjectReference `json:"targetRef"`

	// Roles maps a role name of the ModelServing to its bounds and metrics.
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=2
	Roles map[string]RoleScalingParam `json:"roles"`

	// RatioConstraint keeps replicas[numerator]/replicas[denominator] within bounds.
	// +optional
	RatioConstraint *RoleRatioConstraint `json:"ratioConstraint,omitempty"`
}

// RoleScalingParam is the scaling of one role.
type RoleScalingParam struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	MinReplicas int32 `json:"minReplicas"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxReplicas int32 `json:"maxReplicas"`

	// Metrics override spec.metrics for this role. A fixed role
	// (minReplicas == maxReplicas) needs none.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Metrics []AutoscalingPolicyMetric `json:"metrics,omitempty"`

	// MetricSources maps this role's metric names to where they are read.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	MetricSources map[string]MetricSource `json:"metricSources,omitempty"`
}

// RoleRatioConstraint bounds the ratio of two roles' replicas.
//
// +kubebuilder:validation:XValidation:rule="self.numeratorRole != self.denominatorRole",message="numeratorRole and denominatorRole must differ"
type RoleRatioConstraint struct {
	NumeratorRole   string            `json:"numeratorRole"`
	DenominatorRole string            `json:"denominatorRole"`
	MinRatio        resource.Quantity `json:"minRatio"`
	MaxRatio        resource.Quantity `json:"maxRatio"`
}

// AutoscalingPolicyStatus is the observed state of an AutoscalingPolicy.
type AutoscalingPolicyStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready, TargetFound and RatioConstraintViolated.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// +optional
	HomogeneousStatus *TargetScalingStatus `json:"homogeneousStatus,omitempty"`
	// +optional
	DisaggregatedStatus *DisaggregatedScalingStatus `json:"disaggregatedStatus,omitempty"`
	// +optional
	// +listType=atomic
	HeterogeneousStatus []TargetScalingStatus `json:"heterogeneousStatus,omitempty"`
}

// TargetScalingStatus is the scaling state of one ModelServing or role.
type TargetScalingStatus struct {
	// +optional
	Name            string `json:"name,omitempty"`
	CurrentReplicas int32  `json:"currentReplicas"`
	DesiredReplicas int32  `json:"desiredReplicas"`
	// Mode is Stable or Panic.
	// +optional
	Mode string `json:"mode,omitempty"`
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
}

// DisaggregatedScalingStatus is the scaling state of a disaggregated target.
type DisaggregatedScalingStatus struct {
	// +listType=atomic
	Roles []TargetScalingStatus `json:"roles"`
	// +optional
	RatioStatus *RoleRatioStatus `json:"ratioStatus,omitempty"`
	// RatioAdjusted is true when the last reconcile overrode the metric-derived
	// counts to keep the ratio.
	// +optional
	RatioAdjusted bool `json:"ratioAdjusted,omitempty"`
}

// RoleRatioStatus is the observed ratio of two roles.
type RoleRatioStatus struct {
	NumeratorRole   string `json:"numeratorRole"`
	DenominatorRole string `json:"denominatorRole"`
	// +optional
	CurrentRatio string `json:"currentRatio,omitempty"`
}

// AutoscalingPolicy scales ModelServings on LLM metrics.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type AutoscalingPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AutoscalingPolicySpec   `json:"spec,omitempty"`
	Status AutoscalingPolicyStatus `json:"status,omitempty"`
}

// AutoscalingPolicyList is a list of AutoscalingPolicies.
//
// +kubebuilder:object:root=true
type AutoscalingPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AutoscalingPolicy `json:"items"`
}
