package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExternalProviderType is the API dialect of a hosted provider.
// +kubebuilder:validation:Enum=OpenAI;Anthropic
type ExternalProviderType string

const (
	OpenAI    ExternalProviderType = "OpenAI"
	Anthropic ExternalProviderType = "Anthropic"
)

// AuthScheme is how a provider credential is sent.
// +kubebuilder:validation:Enum=Bearer;APIKey
type AuthScheme string

const (
	// AuthSchemeBearer sends "Authorization: Bearer <credential>".
	AuthSchemeBearer AuthScheme = "Bearer"
	// AuthSchemeAPIKey sends "x-api-key: <credential>".
	AuthSchemeAPIKey AuthScheme = "APIKey"
)

// Condition types and reasons of ExternalModelProvider status.
const (
	ExternalModelProviderConditionReady               = "Ready"
	ExternalModelProviderConditionCredentialsResolved = "CredentialsResolved"

	ExternalModelProviderReasonReady                  = "Ready"
	ExternalModelProviderReasonConfigurationInvalid   = "ConfigurationInvalid"
	ExternalModelProviderReasonCredentialNotRequired  = "CredentialNotRequired"
	ExternalModelProviderReasonCredentialResolved     = "CredentialResolved"
	ExternalModelProviderReasonCredentialNotFound     = "CredentialNotFound"
	ExternalModelProviderReasonCredentialKeyNotFound  = "CredentialKeyNotFound"
	ExternalModelProviderReasonCredentialInvalid      = "CredentialInvalid"
	ExternalModelProviderCredentialSecretLabel        = "networking.serving.volcano.sh/external-model-provider-credential"
	ExternalModelProviderCredentialSecretLabelEnabled = "true"
)

// ExternalModelProviderSpec describes a hosted model API.
type ExternalModelProviderSpec struct {
	// ProviderType is the provider's API dialect.
	// +optional
	// +kubebuilder:default=OpenAI
	ProviderType ExternalProviderType `json:"providerType,omitempty"`

	// Model, when set, replaces the request's model, as ModelServer.spec.model does.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Model *string `json:"model,omitempty"`

	// BaseURL is the provider's API root; only https is allowed.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https://.+`
	BaseURL string `json:"baseURL"`

	// InsecureSkipVerify turns off certificate verification (still https).
	// +optional
	// +kubebuilder:default=false
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`

	// Auth is the credential sent to the provider.
	// +optional
	Auth *ProviderAuth `json:"auth,omitempty"`

	// Headers are static, non-secret headers added to every upstream request.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Headers map[string]string `json:"headers,omitempty"`
}

// ProviderAuth loads a credential from a Secret in the provider's namespace.
//
// +kubebuilder:validation:XValidation:rule="!has(self.secretRef.optional) || !self.secretRef.optional",message="secretRef.optional must be false or unset",fieldPath=".secretRef.optional"
type ProviderAuth struct {
	// Scheme is how the credential is sent. Defaults to Bearer for OpenAI and
	// APIKey for Anthropic.
	// +optional
	Scheme AuthScheme `json:"scheme,omitempty"`

	// SecretRef is the key of a Secret that holds the credential.
	// +required
	SecretRef corev1.SecretKeySelector `json:"secretRef"`
}

// ExternalModelProviderStatus reports whether the router can use the provider.
type ExternalModelProviderStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ExternalModelProvider is a hosted OpenAI- or Anthropic-compatible API that
// ModelRoutes can send traffic to.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:printcolumn:name="Type",type="string",JSONPath=".spec.providerType"
// +kubebuilder:printcolumn:name="BaseURL",type="string",JSONPath=".spec.baseURL"
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ExternalModelProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ExternalModelProviderSpec   `json:"spec,omitempty"`
	Status ExternalModelProviderStatus `json:"status,omitempty"`
}

// ExternalModelProviderList is a list of ExternalModelProviders.
//
// +kubebuilder:object:root=true
type ExternalModelProviderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExternalModelProvider `json:"items"`
}
