package validation

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Validator turns a validation function of one kind into an admission
// validator: creates and updates are checked, deletes allowed, and problems
// are returned as an Invalid error that names each field.
type Validator[T runtime.Object] struct {
	Kind     schema.GroupKind
	Validate func(T) field.ErrorList
}

var _ admission.CustomValidator = &Validator[runtime.Object]{}

func (v *Validator[T]) ValidateCreate(_ context.Context, obj runtime.Object) (admission.Warnings, error) {
	return nil, v.check(obj)
}

func (v *Validator[T]) ValidateUpdate(_ context.Context, _, newObj runtime.Object) (admission.Warnings, error) {
	return nil, v.check(newObj)
}

func (v *Validator[T]) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

func (v *Validator[T]) check(obj runtime.Object) error {
	typed, ok := obj.(T)
	if !ok {
		return fmt.Errorf("expected a %s, got %T", v.Kind.Kind, obj)
	}
	errs := v.Validate(typed)
	if len(errs) == 0 {
		return nil
	}
	name := ""
	if o, ok := obj.(interface{ GetName() string }); ok {
		name = o.GetName()
	}
	return apierrors.NewInvalid(v.Kind, name, errs)
}
