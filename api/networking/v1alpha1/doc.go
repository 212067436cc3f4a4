// Package v1alpha1 holds the networking.serving.volcano.sh/v1alpha1 API: how the
// router finds model servers (ModelServer), how requests for a model name are
// routed to them (ModelRoute), and hosted OpenAI- or Anthropic-compatible
// providers used as route targets (ExternalModelProvider).
//
// The types are wire-compatible with upstream Volcano-Kthena v1alpha1.
//
// +kubebuilder:object:generate=true
// +groupName=networking.serving.volcano.sh
package v1alpha1
