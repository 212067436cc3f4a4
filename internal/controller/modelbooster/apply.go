package modelbooster

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// outcome is what applying one object did.
type outcome string

const (
	outcomeCreated   outcome = "Created"
	outcomeUpdated   outcome = "Updated"
	outcomeUnchanged outcome = ""
)

// apply server-side applies obj as the controller's field manager, with
// force: fields the controller sets come back to its values whoever changed
// them, and fields it never sets (a rateLimit or trafficPolicy added by
// hand) are left alone. An apply that changes nothing is not persisted, so
// the resourceVersion tells whether the object changed.
func (r *Reconciler) apply(ctx context.Context, mb *workloadv1alpha1.ModelBooster, obj client.Object) (outcome, error) {
	if err := controllerutil.SetControllerReference(mb, obj, r.Scheme()); err != nil {
		return outcomeUnchanged, err
	}
	current, err := r.Scheme().New(obj.GetObjectKind().GroupVersionKind())
	if err != nil {
		return outcomeUnchanged, err
	}
	cur := current.(client.Object)
	before := ""
	// Read past the cache: a stale copy would make an unchanged apply look
	// like an update (and a spurious event).
	switch err := r.Reader.Get(ctx, client.ObjectKeyFromObject(obj), cur); {
	case err == nil:
		before = cur.GetResourceVersion()
		if owner := metav1ControllerOf(cur); owner != "" && owner != string(mb.UID) {
			return outcomeUnchanged, fmt.Errorf("%s %s exists and is controlled by another object", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		}
	case !apierrors.IsNotFound(err):
		return outcomeUnchanged, err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return outcomeUnchanged, err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	u := &unstructured.Unstructured{Object: m}
	// Patch with client.Apply rather than Client.Apply: the latter takes
	// generated apply configurations, which the CRD types do not have.
	if err := r.Patch(ctx, u, client.Apply, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return outcomeUnchanged, err
	}
	switch {
	case before == "":
		return outcomeCreated, nil
	case u.GetResourceVersion() != before:
		return outcomeUpdated, nil
	}
	return outcomeUnchanged, nil
}

// metav1ControllerOf is the UID of obj's controller, or "".
func metav1ControllerOf(obj client.Object) string {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.Controller != nil && *ref.Controller {
			return string(ref.UID)
		}
	}
	return ""
}
