package modelbooster

import (
	"errors"

	"k8s.io/apimachinery/pkg/util/validation/field"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// GenerateModelServing returns the ModelServing the controller would
// generate for mb, or the field of mb that keeps it from generating one.
// Admission uses it to refuse a booster the controller could only fail on
// (the autoscaling annotations are checked here too).
func GenerateModelServing(mb *workloadv1alpha1.ModelBooster) (*workloadv1alpha1.ModelServing, *field.Error) {
	p, err := newPlan(mb, Options{DownloaderImage: DefaultDownloaderImage})
	if err != nil {
		var fe *field.Error
		if errors.As(err, &fe) {
			return nil, fe
		}
		return nil, field.Invalid(field.NewPath("spec", "backend"), mb.Spec.Backend.Name, err.Error())
	}
	return buildModelServing(p), nil
}
