package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ModelServingSpec is the desired state of a ModelServing: how many serving
// groups to run, what each group looks like, and how to update and repair them.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.rolloutStrategy) && self.rolloutStrategy.type == 'RoleRollingUpdate' && has(self.recoveryPolicy) && self.recoveryPolicy == 'ServingGroupRecreate')",message="rolloutStrategy.type RoleRollingUpdate cannot be combined with recoveryPolicy ServingGroupRecreate",fieldPath=".recoveryPolicy"
type ModelServingSpec struct {
	// Replicas is the number of serving groups. It is the target of the scale
	// subresource.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// SchedulerName is set on every pod. Volcano PodGroups (gang scheduling)
	// are created only when it is "volcano". Changing it does not roll
	// existing pods; new pods get the new scheduler.
	// +optional
	// +kubebuilder:default=volcano
	SchedulerName string `json:"schedulerName,omitempty"`

	// Plugins customise the pods in the order listed.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Plugins []PluginSpec `json:"plugins,omitempty"`

	// Template is the shape of every serving group.
	Template ServingGroup `json:"template"`

	// RolloutStrategy says how groups move to a new template.
	// +optional
	RolloutStrategy *RolloutStrategy `json:"rolloutStrategy,omitempty"`

	// RecoveryPolicy says what is rebuilt when a pod fails or restarts.
	// +optional
	// +kubebuilder:default=RoleRecreate
	RecoveryPolicy RecoveryPolicy `json:"recoveryPolicy,omitempty"`
}

// RecoveryPolicy is what the controller rebuilds when a pod errs.
// +kubebuilder:validation:Enum=ServingGroupRecreate;RoleRecreate;None
type RecoveryPolicy string

const (
	// ServingGroupRecreate rebuilds every pod of the group, so that all of
	// them start together.
	ServingGroupRecreate RecoveryPolicy = "ServingGroupRecreate"
	// RoleRecreate rebuilds every pod of the erring role replica (its entry
	// pod and workers).
	RoleRecreate RecoveryPolicy = "RoleRecreate"
	// NoneRestartPolicy leaves recovery to the kubelet; only a deleted pod is
	// recreated.
	NoneRestartPolicy RecoveryPolicy = "None"
)

// PluginType is the implementation category of a plugin.
// +kubebuilder:validation:Enum=BuiltIn
type PluginType string

const PluginTypeBuiltIn PluginType = "BuiltIn"

// PluginTarget is the kind of pod a plugin applies to.
// +kubebuilder:validation:Enum=All;Entry;Worker
type PluginTarget string

const (
	PluginTargetAll    PluginTarget = "All"
	PluginTargetEntry  PluginTarget = "Entry"
	PluginTargetWorker PluginTarget = "Worker"
)

// PluginSpec attaches one plugin to a ModelServing.
type PluginSpec struct {
	// Name is the registered plugin name, for example "demo-pod-tweaks".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Type is the plugin's implementation category.
	// +kubebuilder:default=BuiltIn
	Type PluginType `json:"type"`

	// Config is passed to the plugin as is.
	// +optional
	Config *apiextensionsv1.JSON `json:"config,omitempty"`

	// Scope narrows the pods the plugin runs on; unset means all pods.
	// +optional
	Scope *PluginScope `json:"scope,omitempty"`
}

// PluginScope narrows where a plugin runs.
type PluginScope struct {
	// Roles lists the roles the plugin runs on; empty means all roles.
	// +optional
	// +kubebuilder:validation:MaxItems=4
	// +listType=atomic
	Roles []string `json:"roles,omitempty"`

	// Target is the kind of pod the plugin runs on.
	// +optional
	// +kubebuilder:default=All
	Target PluginTarget `json:"target,omitempty"`
}

// RolloutStrategyType is the unit a rolling update replaces at a time.
// +kubebuilder:validation:Enum=ServingGroupRollingUpdate;RoleRollingUpdate
type RolloutStrategyType string

const (
	// ServingGroupRollingUpdate replaces whole serving groups.
	ServingGroupRollingUpdate RolloutStrategyType = "ServingGroupRollingUpdate"
	// RoleRollingUpdate replaces role replicas inside the groups, leaving the
	// other roles of a group running.
	RoleRollingUpdate RolloutStrategyType = "RoleRollingUpdate"
)

// RolloutStrategy says how serving groups move to a new template.
type RolloutStrategy struct {
	// Type is the unit replaced at a time.
	// +kubebuilder:default=ServingGroupRollingUpdate
	Type RolloutStrategyType `json:"type"`

	// RollingUpdateConfiguration is the budget of ServingGroupRollingUpdate;
	// RoleRollingUpdate reads each role's maxUnavailable and partition instead.
	// +optional
	RollingUpdateConfiguration *RollingUpdateConfiguration `json:"rollingUpdateConfiguration,omitempty"`

	// EvictionStrategy is the availability to protect while nodes are drained.
	// +optional
	EvictionStrategy *EvictionStrategySpec `json:"evictionStrategy,omitempty"`
}

// RollingUpdateConfiguration is the budget of a serving-group rolling update.
type RollingUpdateConfiguration struct {
	// MaxUnavailable is how many groups may be down for the update at once:
	// a number, or a percentage of spec.replicas rounded down. It may be 0
	// only when maxSurge is above 0; if both resolve to 0, 1 is used.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:default=1
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// MaxSurge is how many serving groups on the update revision may be
	// created above spec.replicas during the update: a number, or a
	// percentage of spec.replicas rounded up. Default 0 (no surge). Surge
	// groups are removed once the groups they stand in for are updated and
	// ready. maxSurge and maxUnavailable must not both be 0.
	// +optional
	// +kubebuilder:validation:XIntOrString
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`

	// Partition keeps the groups with ordinals below it on their old revision:
	// a number, or a percentage of spec.replicas rounded up. Default 0.
	// +optional
	// +kubebuilder:validation:XIntOrString
	Partition *intstr.IntOrString `json:"partition,omitempty"`
}

// ProtectionLevelType is the unit whose availability an eviction budget protects.
// +kubebuilder:validation:Enum=ServingGroup;Role
type ProtectionLevelType string

const (
	ProtectionLevelServingGroup ProtectionLevelType = "ServingGroup"
	ProtectionLevelRole         ProtectionLevelType = "Role"
)

// EvictionStrategySpec is the availability to keep while pods are evicted.
type EvictionStrategySpec struct {
	// ProtectionLevel is the unit the budget counts.
	// +kubebuilder:default=ServingGroup
	ProtectionLevel ProtectionLevelType `json:"protectionLevel"`

	// MinAvailable is the number or percentage of ready serving groups to keep
	// (protectionLevel ServingGroup).
	// +optional
	// +kubebuilder:validation:XIntOrString
	MinAvailable *intstr.IntOrString `json:"minAvailable,omitempty"`

	// RoleMinAvailable is, per role name, the number or percentage of ready
	// role replicas to keep (protectionLevel Role). Roles not listed are not protected.
	// +optional
	// +kubebuilder:validation:MaxProperties=4
	RoleMinAvailable map[string]intstr.IntOrString `json:"roleMinAvailable,omitempty"`
}

// ModelServingConditionType is a condition type of ModelServing status.
type ModelServingConditionType string

const (
	// ModelServingAvailable: every serving group is running and ready.
	ModelServingAvailable ModelServingConditionType = "Available"
	// ModelServingProgressing: groups are being created, scaled or repaired.
	ModelServingProgressing ModelServingConditionType = "Progressing"
	// ModelServingUpdateInProgress: groups are moving to a new revision.
	ModelServingUpdateInProgress ModelServingConditionType = "UpdateInProgress"
)

// ModelServingStatus is the observed state of a ModelServing.
type ModelServingStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Replicas is the number of serving groups that exist, updated or not,
	// ready or not.
	Replicas int32 `json:"replicas,omitempty"`

	// CurrentReplicas is the number of groups at currentRevision.
	CurrentReplicas int32 `json:"currentReplicas,omitempty"`

	// UpdatedReplicas is the number of groups at updateRevision.
	UpdatedReplicas int32 `json:"updatedReplicas,omitempty"`

	// AvailableReplicas is the number of groups whose pods are all ready.
	AvailableReplicas int32 `json:"availableReplicas,omitempty"`

	// CurrentRevision is the revision of the groups not yet updated.
	// +optional
	CurrentRevision string `json:"currentRevision,omitempty"`

	// UpdateRevision is the revision of the current spec.
	// +optional
	UpdateRevision string `json:"updateRevision,omitempty"`

	// Conditions are Available, Progressing and UpdateInProgress.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LabelSelector selects one pod per serving group (the entry pod of the
	// first role's first replica), so that HPA and KEDA count groups.
	// +optional
	LabelSelector string `json:"labelSelector,omitempty"`
}

// ModelServing deploys one model as a number of serving groups, each a set of
// roles (for example prefill and decode), each role replica an entry pod and
// optional worker pods.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.labelSelector
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Desired",type="integer",JSONPath=".spec.replicas",description="Desired number of serving groups",priority=1
// +kubebuilder:printcolumn:name="Replicas",type="integer",JSONPath=".status.replicas",description="Serving groups that exist"
// +kubebuilder:printcolumn:name="Available",type="integer",JSONPath=".status.availableReplicas",description="Serving groups whose pods are all ready"
// +kubebuilder:printcolumn:name="Updated",type="integer",JSONPath=".status.updatedReplicas",description="Serving groups at the latest revision"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.updateRevision",description="Latest revision",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ModelServing struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModelServingSpec   `json:"spec,omitempty"`
	Status ModelServingStatus `json:"status,omitempty"`
}

// ModelServingList is a list of ModelServings.
//
// +kubebuilder:object:root=true
type ModelServingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelServing `json:"items"`
}
