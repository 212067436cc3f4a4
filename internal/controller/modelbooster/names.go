// Package modelbooster runs the ModelBooster controller: from one
// ModelBooster it generates a ModelServing, a ModelServer, a ModelRoute and,
// when the booster asks for autoscaling, an AutoscalingPolicy, and keeps
// them as generated with server-side apply.
package modelbooster

import (
	"crypto/sha256"
	"encoding/hex"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// ControllerName is the name on the --controllers list.
const ControllerName = "modelbooster"

// FieldManager owns the fields the controller applies; a hand edit of one of
// them is taken back on the next reconcile.
const FieldManager = "kthena-modelbooster"

// servingName names the ModelServing, ModelServer and AutoscalingPolicy of
// a booster: one backend, one name, so a backend rename makes new objects.
func servingName(mb *workloadv1alpha1.ModelBooster) string {
	return mb.Name + "-" + mb.Spec.Backend.Name
}

// routeName names the ModelRoute: one route per booster, whatever the backend.
func routeName(mb *workloadv1alpha1.ModelBooster) string { return mb.Name }

// modelName is the model clients ask for.
func modelName(mb *workloadv1alpha1.ModelBooster) string {
	if mb.Spec.Name != "" {
		return mb.Spec.Name
	}
	return mb.Name
}

// generatedLabels mark every generated object (and the pods) with the
// booster it came from, under upstream's label keys.
func generatedLabels(mb *workloadv1alpha1.ModelBooster) map[string]string {
	return map[string]string{
		workloadv1alpha1.ModelBoosterModelNameLabelKey:   mb.Name,
		workloadv1alpha1.ModelBoosterBackendNameLabelKey: mb.Spec.Backend.Name,
		workloadv1alpha1.ModelBoosterManagedByLabelKey:   workloadv1alpha1.ModelBoosterManagedByValue,
		workloadv1alpha1.ModelBoosterModelUIDLabelKey:    string(mb.UID),
	}
}

// modelDirName is the directory under the cache a modelURI is downloaded
// to: a hash, so two boosters of the same model share a cache entry and a
// new modelURI never reuses an old download.
func modelDirName(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return hex.EncodeToString(sum[:8])
}
