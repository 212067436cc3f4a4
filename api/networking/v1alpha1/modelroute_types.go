package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ModelRouteSpec maps the model named in a request to weighted targets.
//
// +kubebuilder:validation:XValidation:rule="(has(self.modelName) && self.modelName != \"\") || (has(self.loraAdapters) && size(self.loraAdapters) > 0)",message="modelName and loraAdapters cannot both be empty"
// +kubebuilder:validation:XValidation:rule="(has(self.modelName) ? self.modelName : \"\") == (has(oldSelf.modelName) ? oldSelf.modelName : \"\")",message="modelName is immutable",fieldPath=".modelName"
type ModelRouteSpec struct {
	// ModelName is the `model` of the requests this route serves: a base
	// model, an alias or a virtual model name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ModelName string `json:"modelName,omitempty"`

	// LoraAdapters are LoRA adapter names this route also serves; a request
	// naming one keeps that name as its model.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +listType=atomic
	LoraAdapters []string `json:"loraAdapters,omitempty"`

	// ParentRefs binds the route to Gateways (and listeners by sectionName).
	// Empty means requests that do not come through a Gateway, and Gateways in
	// the route's own namespace.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	ParentRefs []gatewayv1.ParentReference `json:"parentRefs,omitempty"`

	// Rules are tried in order; the first whose match holds picks the target.
	// A request that matches no rule gets 404.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Rules []*Rule `json:"rules"`

	// RateLimit bounds the input and output tokens of this model per unit of
	// time. Unset means no limit.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// Rule is one match and the targets it sends traffic to.
//
// +kubebuilder:validation:XValidation:rule="self.targetModels.exists(t, !has(t.weight) || t.weight > 0)",message="at least one target model must have a weight above 0",fieldPath=".targetModels"
type Rule struct {
	// Name identifies the rule in logs and metrics.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// ModelMatch must hold for the rule to apply; empty matches every request.
	// +optional
	ModelMatch *ModelMatch `json:"modelMatch,omitempty"`

	// TargetModels receive the matched traffic, split by weight.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	TargetModels []*TargetModel `json:"targetModels"`
}

// ModelMatch is a set of conditions that must all hold.
type ModelMatch struct {
	// Headers maps a header name to the condition its value must meet.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Headers map[string]*StringMatch `json:"headers,omitempty"`

	// Uri is the condition the request path must meet.
	// +optional
	Uri *StringMatch `json:"uri,omitempty"` //nolint:revive // wire name fixed by upstream

	// Body holds conditions on the request body.
	// +optional
	Body *BodyMatch `json:"body,omitempty"`
}

// BodyMatch holds conditions on the JSON request body.
type BodyMatch struct {
	// Model must equal the request's model.
	// +optional
	Model *string `json:"model,omitempty"`
}

// StringMatch is exactly one of an exact, prefix or RE2 regular-expression match.
//
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",message="exactly one of exact, prefix or regex must be set"
type StringMatch struct {
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exact *string `json:"exact,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Prefix *string `json:"prefix,omitempty"`
	// Regex is an RE2 expression that must match the whole value somewhere
	// (unanchored unless it uses ^ and $).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`
}

// TargetModel is one destination of a rule: a ModelServer or an
// ExternalModelProvider in the route's namespace.
//
// +kubebuilder:validation:XValidation:rule="(has(self.modelServerName) && self.modelServerName != \"\") != (has(self.externalModelProviderName) && self.externalModelProviderName != \"\")",message="exactly one of modelServerName or externalModelProviderName must be set"
type TargetModel struct {
	// ModelServerName names a ModelServer in the same namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ModelServerName string `json:"modelServerName,omitempty"`

	// ExternalModelProviderName names an ExternalModelProvider in the same namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ExternalModelProviderName string `json:"externalModelProviderName,omitempty"`

	// Weight is this target's share of the rule's traffic relative to the
	// other targets' weights.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight *uint32 `json:"weight,omitempty"`
}

// RateLimitUnit is the period of a token rate limit. A month is 30 days.
// +kubebuilder:validation:Enum=second;minute;hour;day;month
type RateLimitUnit string

const (
	Second RateLimitUnit = "second"
	Minute RateLimitUnit = "minute"
	Hour   RateLimitUnit = "hour"
	Day    RateLimitUnit = "day"
	Month  RateLimitUnit = "month"
)

// RateLimit bounds tokens per unit of time for one model.
type RateLimit struct {
	// InputTokensPerUnit bounds prompt tokens per unit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	InputTokensPerUnit *uint32 `json:"inputTokensPerUnit,omitempty"`

	// OutputTokensPerUnit bounds generated tokens per unit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	OutputTokensPerUnit *uint32 `json:"outputTokensPerUnit,omitempty"`

	// Unit is the period the limits apply to.
	// +kubebuilder:default=second
	Unit RateLimitUnit `json:"unit"`

	// Global shares the limit across router replicas through Redis. Unset
	// means each router replica enforces the limit on its own.
	// +optional
	Global *GlobalRateLimit `json:"global,omitempty"`
}

// GlobalRateLimit names the shared store of a global rate limit.
type GlobalRateLimit struct {
	// +optional
	Redis *RedisConfig `json:"redis,omitempty"`
}

// RedisConfig is where a Redis server listens.
type RedisConfig struct {
	// Address is host:port.
	// +required
	// +kubebuilder:validation:MinLength=1
	Address string `json:"address"`
}

// ModelRouteStatus is empty.
type ModelRouteStatus struct{}

// ModelRoute routes requests for a model name to ModelServers or external providers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Model",type="string",JSONPath=".spec.modelName",description="Model name served by this route"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ModelRoute struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModelRouteSpec   `json:"spec"`
	Status ModelRouteStatus `json:"status,omitempty"`
}

// ModelRouteList is a list of ModelRoutes.
//
// +kubebuilder:object:root=true
type ModelRouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelRoute `json:"items"`
}
