package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

// ModelBoosterSpec deploys one model end to end: the controller generates a
// ModelServing, a ModelServer and a ModelRoute from it.
type ModelBoosterSpec struct {
	// Name is the model name clients send (ModelRoute.modelName); defaults to
	// the object's name.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// Owner is the team or person that owns the model.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Owner string `json:"owner,omitempty"`

	// Backend is the engine deployment that serves the model.
	Backend ModelBackend `json:"backend"`

	// ModelMatch is copied into the generated route's rule.
	// +optional
	ModelMatch *networkingv1alpha1.ModelMatch `json:"modelMatch,omitempty"`
}

// ModelBackendType is the engine flavour of a backend.
// +kubebuilder:validation:Enum=vLLM;vLLMDisaggregated
type ModelBackendType string

const (
	ModelBackendTypeVLLM                ModelBackendType = "vLLM"
	ModelBackendTypeVLLMDisaggregated   ModelBackendType = "vLLMDisaggregated"
	ModelBackendTypeSGLang              ModelBackendType = "SGLang"
	ModelBackendTypeMindIE              ModelBackendType = "MindIE"
	ModelBackendTypeMindIEDisaggregated ModelBackendType = "MindIEDisaggregated"
)

// ModelBackend is the engine deployment of a ModelBooster.
type ModelBackend struct {
	// Name identifies the backend; renaming it replaces its ModelServing.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Type is the engine flavour.
	Type ModelBackendType `json:"type"`

	// ModelURI is where the weights are downloaded from.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(hf://|s3://|obs://|pvc://|ms://).+`
	ModelURI string `json:"modelURI"`

	// CacheURI is where downloaded weights are kept: pvc://CLAIM[/path] or
	// hostpath://PATH. Empty means an emptyDir.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(hostpath://|pvc://).+`
	CacheURI string `json:"cacheURI,omitempty"`

	// EnvFrom populates the engine's environment from ConfigMaps or Secrets.
	// +optional
	// +listType=atomic
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`

	// Env sets engine environment variables. Recognised names include
	// ENDPOINT, RUNTIME_URL, RUNTIME_PORT, RUNTIME_METRICS_PATH, HF_ENDPOINT,
	// MS_TOKEN, MS_REVISION and KTHENA_SKIP_ENGINE_DEPENDENCY_INSTALL.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`

	// Replicas is the number of serving groups.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Replicas int32 `json:"replicas,omitempty"`

	// Workers are the roles of each serving group.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	Workers []ModelWorker `json:"workers"`

	// SchedulerName is the pods' scheduler.
	// +optional
	SchedulerName string `json:"schedulerName,omitempty"`

	// RuntimeClassName is the pods' RuntimeClass.
	// +optional
	RuntimeClassName *string `json:"runtimeClassName,omitempty"`
}

// ModelWorkerType is the job of a worker in a backend.
// +kubebuilder:validation:Enum=server;prefill;decode;controller;coordinator
type ModelWorkerType string

const (
	ModelWorkerTypeServer      ModelWorkerType = "server"
	ModelWorkerTypePrefill     ModelWorkerType = "prefill"
	ModelWorkerTypeDecode      ModelWorkerType = "decode"
	ModelWorkerTypeController  ModelWorkerType = "controller"
	ModelWorkerTypeCoordinator ModelWorkerType = "coordinator"
)

// ModelWorker is one role of a backend.
type ModelWorker struct {
	// Type is the worker's job.
	// +optional
	// +kubebuilder:default=server
	Type ModelWorkerType `json:"type,omitempty"`

	// Image is the engine image.
	// +optional
	Image string `json:"image,omitempty"`

	// Replicas is the role's replicas per serving group.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Replicas int32 `json:"replicas,omitempty"`

	// Pods is the number of pods per role replica (1 entry + workers).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Pods int32 `json:"pods,omitempty"`

	// Resources of the engine container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// Affinity of the pods.
	// +optional
	Affinity corev1.Affinity `json:"affinity,omitempty"`

	// Tolerations of the pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Config holds engine arguments: each key becomes --key-with-dashes value,
	// and an empty string value a bare flag.
	// +optional
	Config apiextensionsv1.JSON `json:"config,omitempty"`
}

// ModelStatusConditionType is a condition type of ModelBooster status.
type ModelStatusConditionType string

const (
	ModelStatusConditionTypeInitialized ModelStatusConditionType = "Initialized"
	ModelStatusConditionTypeActive      ModelStatusConditionType = "Active"
	ModelStatusConditionTypeFailed      ModelStatusConditionType = "Failed"
)

// ModelStatus is the observed state of a ModelBooster.
type ModelStatus struct {
	// Conditions are Initialized, Active and Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ModelBooster deploys a model in one object.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Active",type="string",JSONPath=".status.conditions[?(@.type==\"Active\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ModelBooster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModelBoosterSpec `json:"spec,omitempty"`
	Status ModelStatus      `json:"status,omitempty"`
}

// ModelBoosterList is a list of ModelBoosters.
//
// +kubebuilder:object:root=true
type ModelBoosterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelBooster `json:"items"`
}
