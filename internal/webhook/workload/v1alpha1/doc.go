// Package v1alpha1 holds the admission webhooks of workload.serving.volcano.sh/v1alpha1:
// defaulting and validation of ModelServing, ModelBooster and AutoscalingPolicy
// beyond what the CRD schema and its CEL rules can express.
package v1alpha1
