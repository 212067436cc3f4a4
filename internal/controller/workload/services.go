package workload

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// desiredServices returns the headless Service of every role replica whose
// template has workers, keyed by name. A replica being rebuilt keeps its
// Service; a removed replica loses it.
func (p *plan) desiredServices() map[string]*corev1.Service {
	out := map[string]*corev1.Service{}
	for _, i := range p.m.sortedGroups() {
		g := p.m.groups[i]
		g.each(func(r *replicaState) {
			role, _, _ := p.templateFor(g, r)
			if role == nil || role.WorkerReplicas == 0 && len(r.pods) <= 1 {
				return
			}
			svc := buildService(p.ms, i, r.role, r.ordinal)
			out[svc.Name] = svc
		})
	}
	return out
}

// buildService is the headless Service named after the entry pod, selecting
// it, publishing it before it is ready so that workers can find their
// leader while it starts.
func buildService(ms *workloadv1alpha1.ModelServing, group int, role string, roleIdx int) *corev1.Service {
	sel := unitLabels(ms.Name, group, role, roleIdx)
	delete(sel, workloadv1alpha1.ModelServingNameLabelKey)
	sel[workloadv1alpha1.EntryLabelKey] = "true"
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            ServiceName(ms.Name, group, role, roleIdx),
			Namespace:       ms.Namespace,
			Labels:          unitLabels(ms.Name, group, role, roleIdx),
			OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 sel,
		},
	}
}

// syncServices creates the missing Services and deletes the surplus ones.
func (r *Reconciler) syncServices(ctx context.Context, ms *workloadv1alpha1.ModelServing, desired map[string]*corev1.Service) error {
	var have corev1.ServiceList
	if err := r.List(ctx, &have, client.InNamespace(ms.Namespace), client.MatchingFields{ownerIndex: ms.Name}); err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for i := range have.Items {
		svc := &have.Items[i]
		if !ownedBy(svc, ms) {
			continue
		}
		seen[svc.Name] = true
		if desired[svc.Name] == nil && svc.DeletionTimestamp == nil {
			if err := r.Delete(ctx, svc, client.Preconditions{UID: &svc.UID}); client.IgnoreNotFound(err) != nil {
				errs = append(errs, err)
			}
		}
	}
	for name, svc := range desired {
		if seen[name] {
			continue
		}
		if err := r.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ownedBy is true when obj's controller is ms (this incarnation of it).
func ownedBy(obj metav1.Object, ms *workloadv1alpha1.ModelServing) bool {
	ref := metav1.GetControllerOf(obj)
	return ref != nil && ref.UID == ms.UID
}
