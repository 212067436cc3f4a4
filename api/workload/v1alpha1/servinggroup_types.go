package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"
)

// ServingGroup is the template of one serving group: the smallest set of pods
// that serves the model on its own.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.gangPolicy) || has(self.gangPolicy)",message="gangPolicy cannot be removed once set",fieldPath=".gangPolicy"
type ServingGroup struct {
	// RestartGracePeriodSeconds is how long an erring pod may recover on its
	// own before the controller rebuilds it as recoveryPolicy says. 0 means at once.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	RestartGracePeriodSeconds *int64 `json:"restartGracePeriodSeconds,omitempty"`

	// GangPolicy sets how many replicas of each role must be scheduled
	// together. Unset means all replicas of all roles.
	// +optional
	GangPolicy *GangPolicy `json:"gangPolicy,omitempty"`

	// NetworkTopology asks a topology-aware scheduler (Volcano HyperNodes) to
	// keep the group, or each role replica, within a network tier.
	// +optional
	NetworkTopology *NetworkTopology `json:"networkTopology,omitempty"`

	// Roles are the parts of the group, for example prefill and decode.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:XValidation:rule="self.all(x, self.exists_one(y, y.name == x.name))",message="role names must be unique"
	// +listType=atomic
	Roles []Role `json:"roles"`
}

// GangPolicy is the gang-scheduling requirement of a serving group.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.minRoleReplicas) || has(self.minRoleReplicas)",message="minRoleReplicas cannot be removed once set",fieldPath=".minRoleReplicas"
type GangPolicy struct {
	// MinRoleReplicas is, per role name, the number of role replicas that must
	// be schedulable together before any pod of the group starts.
	// +optional
	// +kubebuilder:validation:MaxProperties=4
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="minRoleReplicas is immutable"
	MinRoleReplicas map[string]int32 `json:"minRoleReplicas,omitempty"`
}

// NetworkTopology is the network-topology requirement of a group and its roles.
type NetworkTopology struct {
	// GroupPolicy applies to all pods of the serving group.
	// +optional
	GroupPolicy *volcanov1beta1.NetworkTopologySpec `json:"groupPolicy,omitempty"`

	// RolePolicy applies to the pods of each role replica.
	// +optional
	RolePolicy *volcanov1beta1.NetworkTopologySpec `json:"rolePolicy,omitempty"`
}

// Role is one part of a serving group, replicated inside the group: for
// example 2 prefill replicas and 1 decode replica (2P1D). A role replica is
// an entry pod plus workerReplicas worker pods (multi-node inference).
//
// +kubebuilder:validation:XValidation:rule="self.workerReplicas == 0 || has(self.workerTemplate)",message="workerTemplate is required when workerReplicas is above 0",fieldPath=".workerTemplate"
type Role struct {
	// Name is unique within the group and becomes part of pod names, so it
	// must be a DNS-1035 label of at most 12 characters.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=12
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Replicas is the number of replicas of this role in each group.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// EntryTemplate is the pod every role replica has exactly one of.
	EntryTemplate PodTemplateSpec `json:"entryTemplate"`

	// WorkerReplicas is the number of worker pods of each role replica.
	// +kubebuilder:validation:Minimum=0
	WorkerReplicas int32 `json:"workerReplicas"`

	// WorkerTemplate is the worker pod; required when workerReplicas > 0.
	// +optional
	WorkerTemplate *PodTemplateSpec `json:"workerTemplate,omitempty"`

	// MaxUnavailable is, with RoleRollingUpdate, how many replicas of this
	// role may be down for the update at once (number or percentage of the
	// role's replicas). Unset means all outdated replicas at once.
	// +optional
	// +kubebuilder:validation:XIntOrString
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// Partition keeps, with RoleRollingUpdate, the role replicas with ordinals
	// below it on their old template.
	// +optional
	// +kubebuilder:validation:XIntOrString
	Partition *intstr.IntOrString `json:"partition,omitempty"`
}

// PodTemplateSpec is the pod a role creates.
type PodTemplateSpec struct {
	// Metadata holds labels and annotations merged over the controller's own.
	// +optional
	Metadata *Metadata `json:"metadata,omitempty"`

	// Spec is the pod's spec.
	// +optional
	Spec corev1.PodSpec `json:"spec,omitempty"`
}

// Metadata is the part of ObjectMeta a pod template may set.
type Metadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}
