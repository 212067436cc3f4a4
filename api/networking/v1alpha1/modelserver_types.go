package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InferenceEngine names the engine that serves a model. It selects how the
// router reads engine metrics and which prefill/decode protocol it speaks.
// +kubebuilder:validation:Enum=vLLM;SGLang
type InferenceEngine string

const (
	VLLM   InferenceEngine = "vLLM"
	SGLang InferenceEngine = "SGLang"
)

// KVConnectorType names the protocol used to hand a prefilled KV cache from a
// prefill pod to a decode pod.
// +kubebuilder:validation:Enum=http;lmcache;nixl;mooncake
type KVConnectorType string

const (
	// ConnectorTypeHTTP sends the prefill and decode requests one after the
	// other without exchanging transfer parameters.
	ConnectorTypeHTTP KVConnectorType = "http"
	// ConnectorTypeLMCache is vLLM's LMCache connector; routed like http.
	ConnectorTypeLMCache KVConnectorType = "lmcache"
	// ConnectorTypeNIXL is vLLM's NixlConnector: the prefill response carries
	// kv_transfer_params that the decode request must receive.
	ConnectorTypeNIXL KVConnectorType = "nixl"
	// ConnectorTypeMooncake is vllm-ascend's Mooncake connector; routed like nixl.
	ConnectorTypeMooncake KVConnectorType = "mooncake"
)

// ModelServerSpec says which pods serve a model and how to reach them.
type ModelServerSpec struct {
	// Model is the name the engine serves. When set, the router replaces the
	// request's model with it, except for requests that name a LoRA adapter.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Model *string `json:"model,omitempty"`

	// InferenceEngine is the engine running in the selected pods.
	// +required
	InferenceEngine InferenceEngine `json:"inferenceEngine"`

	// WorkloadSelector selects the serving pods in the ModelServer's namespace.
	// +required
	WorkloadSelector *WorkloadSelector `json:"workloadSelector"`

	// WorkloadPort is the engine's port on each pod; the router also scrapes
	// /metrics and /v1/models there.
	WorkloadPort WorkloadPort `json:"workloadPort,omitempty"`

	// TrafficPolicy bounds and retries requests to the pods, and may keep
	// sessions on one pod.
	// +optional
	TrafficPolicy *TrafficPolicy `json:"trafficPolicy,omitempty"`

	// KVConnector selects the prefill/decode hand-off protocol when
	// workloadSelector.pdGroup is set.
	// +optional
	KVConnector *KVConnectorSpec `json:"kvConnector,omitempty"`
}

// WorkloadSelector selects serving pods by label.
type WorkloadSelector struct {
	// MatchLabels must all be present on a pod for it to serve this model.
	// At least one label is required (checked by admission).
	MatchLabels map[string]string `json:"matchLabels,omitempty"`

	// PDGroup splits the selected pods into prefill and decode pods, paired by
	// the value of a shared group label. Setting it turns on disaggregated routing.
	// +optional
	PDGroup *PDGroup `json:"pdGroup,omitempty"`
}

// PDGroup describes how prefill and decode pods are told apart and paired.
type PDGroup struct {
	// GroupKey is a label key; a prefill pod and a decode pod are paired only
	// when both carry it with the same value (for example one serving group).
	GroupKey string `json:"groupKey"`
	// PrefillLabels select the prefill pods among the workload's pods.
	PrefillLabels map[string]string `json:"prefillLabels"`
	// DecodeLabels select the decode pods among the workload's pods.
	DecodeLabels map[string]string `json:"decodeLabels"`
}

// WorkloadPort is the engine's listening port and scheme.
type WorkloadPort struct {
	// Port is the engine's TCP port.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// Protocol is the scheme the engine speaks.
	// +optional
	// +kubebuilder:default=http
	// +kubebuilder:validation:Enum=http;https
	Protocol string `json:"protocol,omitempty"`
}

// KVConnectorSpec configures the prefill/decode KV hand-off.
type KVConnectorSpec struct {
	// Type is the connector protocol; use http when unsure.
	// +kubebuilder:default=http
	Type KVConnectorType `json:"type,omitempty"`
}

// TrafficPolicy bounds how long a request may take, how it is retried, and
// whether a session stays on one pod.
type TrafficPolicy struct {
	// Timeout bounds one attempt up to the first response byte. Streams are
	// then bounded by the router's idle timeout instead. Unset means no bound.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Retry re-sends a failed request to another pod, as long as nothing has
	// been written to the client yet.
	// +optional
	Retry *Retry `json:"retry,omitempty"`

	// SessionSticky keeps requests that carry the same session key on the
	// same pod of this ModelServer for a while. Unset means no affinity.
	// +optional
	SessionSticky *SessionSticky `json:"sessionSticky,omitempty"`
}

// DefaultSessionAffinitySeconds is the binding lifetime when
// sessionAffinitySeconds is unset: 3 hours, the value of upstream's first
// proposal and of Kubernetes' ClientIP service affinity.
const DefaultSessionAffinitySeconds int32 = 10800

// SessionSticky binds a session key, read from the request, to the pod that
// served it. The binding is refreshed by every request of the session and
// dropped when it expires; when the bound pod is gone (or too busy) the
// router picks another pod and binds the session to it.
//
// The schema follows upstream Kthena v1.0 (ModelServer
// spec.trafficPolicy.sessionSticky: sessionAffinitySeconds and an ordered list
// of sources of type Header, Query, Cookie or JWTClaim), so manifests written
// for upstream are accepted unchanged. As upstream, where bindings are kept
// (router memory or a shared Redis) is router configuration, not part of the
// ModelServer. Upstream's proposals disagree on the default lifetime (10800 s
// in the first, 300 s in the ModelServer revision); this API uses 10800 s.
type SessionSticky struct {
	// SessionAffinitySeconds is how long a binding lives after the last
	// request of its session.
	// +optional
	// +kubebuilder:default=10800
	// +kubebuilder:validation:Minimum=1
	SessionAffinitySeconds *int32 `json:"sessionAffinitySeconds,omitempty"`

	// Sources are tried in order; the first one present and non-empty in a
	// request gives its session key. A request with none is scheduled as if
	// affinity were off.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Sources []SessionKeySource `json:"sources"`
}

// SessionKeySourceType says where in the request a session key is read.
// +kubebuilder:validation:Enum=Header;Query;Cookie;JWTClaim
type SessionKeySourceType string

const (
	// SessionKeySourceHeader reads a request header (name is matched
	// case-insensitively).
	SessionKeySourceHeader SessionKeySourceType = "Header"
	// SessionKeySourceQuery reads a URL query parameter.
	SessionKeySourceQuery SessionKeySourceType = "Query"
	// SessionKeySourceCookie reads a cookie (name is case-sensitive).
	SessionKeySourceCookie SessionKeySourceType = "Cookie"
	// SessionKeySourceJWTClaim reads a top-level string or number claim of
	// the bearer token in the Authorization header.
	SessionKeySourceJWTClaim SessionKeySourceType = "JWTClaim"
)

// SessionKeySource is one place a session key may be read from.
type SessionKeySource struct {
	// Type is the kind of source.
	// +required
	Type SessionKeySourceType `json:"type"`

	// Name is the header name, query parameter, cookie name or claim name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
}

// Retry is the retry budget of one request.
type Retry struct {
	// Attempts is how many times a failed request is retried on another pod.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Attempts int32 `json:"attempts"`

	// RetryInterval is the pause before each retry.
	// +kubebuilder:default="100ms"
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`
}

// ModelServerStatus is empty; the router reports per-pod state in metrics.
type ModelServerStatus struct{}

// ModelServer is a set of engine pods that serve one model.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Engine",type="string",JSONPath=".spec.inferenceEngine",description="Inference engine"
// +kubebuilder:printcolumn:name="Port",type="integer",JSONPath=".spec.workloadPort.port",description="Engine port"
// +kubebuilder:printcolumn:name="Protocol",type="string",JSONPath=".spec.workloadPort.protocol",description="Engine protocol"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ModelServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ModelServerSpec   `json:"spec,omitempty"`
	Status ModelServerStatus `json:"status,omitempty"`
}

// ModelServerList is a list of ModelServers.
//
// +kubebuilder:object:root=true
type ModelServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelServer `json:"items"`
}
