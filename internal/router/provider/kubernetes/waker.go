package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/internal/router/coldstart"
)

// Waker asks the autoscaler to scale up, from zero, the ModelServings whose
// pods a ModelServer selects (coldstart.Waker). It reads ModelServings
// directly rather than from a cache: it runs only while requests are held,
// at most once per wake interval and ModelServer.
type Waker struct {
	c client.Client
}

// NewWaker returns a Waker that reaches the API server with cfg.
func NewWaker(cfg *rest.Config) (*Waker, error) {
	s := Scheme()
	if err := workloadv1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("scale-from-zero client: %w", err)
	}
	return &Waker{c: c}, nil
}

// Wake implements coldstart.Waker: it passes the demand on with the
// request, so the autoscaler sizes the wake to it.
func (w *Waker) Wake(ctx context.Context, server *networkingv1alpha1.ModelServer, demand int) error {
	if server.Spec.WorkloadSelector == nil || len(server.Spec.WorkloadSelector.MatchLabels) == 0 {
		return coldstart.ErrNoWorkload
	}
	var list workloadv1alpha1.ModelServingList
	if err := w.c.List(ctx, &list, client.InNamespace(server.Namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return coldstart.ErrNoWorkload // the workload plane is not installed
		}
		return fmt.Errorf("listing ModelServings in %s: %w", server.Namespace, err)
	}
	sel := labels.SelectorFromSet(server.Spec.WorkloadSelector.MatchLabels)
	now := time.Now()
	var errs []error
	woken := 0
	for i := range list.Items {
		ms := &list.Items[i]
		if !selectsEntryPods(sel, ms) {
			continue
		}
		woken++
		errs = append(errs, autoscaling.RequestCapacity(ctx, w.c, types.NamespacedName{Namespace: ms.Namespace, Name: ms.Name}, now, demand))
	}
	if woken == 0 {
		return coldstart.ErrNoWorkload
	}
	return errors.Join(errs...)
}

// selectsEntryPods reports whether sel matches the entry pods of some role
// of ms, by the labels the ModelServing controller gives them (its own and
// the role template's).
func selectsEntryPods(sel labels.Selector, ms *workloadv1alpha1.ModelServing) bool {
	for _, r := range ms.Spec.Template.Roles {
		set := labels.Set{}
		if md := r.EntryTemplate.Metadata; md != nil {
			for k, v := range md.Labels {
				set[k] = v
			}
		}
		set[workloadv1alpha1.ModelServingNameLabelKey] = ms.Name
		set[workloadv1alpha1.RoleLabelKey] = r.Name
		set[workloadv1alpha1.EntryLabelKey] = "true"
		if sel.Matches(set) {
			return true
		}
	}
	return false
}
