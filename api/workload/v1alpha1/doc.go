// Package v1alpha1 holds the workload.serving.volcano.sh/v1alpha1 API: how a
// model is deployed (ModelServing), a one-stop deployment of model, server and
// route (ModelBooster), and how deployments scale on LLM metrics
// (AutoscalingPolicy).
//
// The types are wire-compatible with upstream Volcano-Kthena v1alpha1.
//
// +kubebuilder:object:generate=true
// +groupName=workload.serving.volcano.sh
package v1alpha1
