// Package v1alpha1 holds the admission webhooks of networking.serving.volcano.sh/v1alpha1:
// validation of ModelRoute, ModelServer and ExternalModelProvider beyond what
// the CRD schema and its CEL rules can express, and provider defaults.
package v1alpha1
