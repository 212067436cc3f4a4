package platform

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// collector is the platform's owner-reference garbage collector: there is
// no kube-controller-manager, so it deletes pods and services whose owners
// are all gone (background cascade), as the upstream garbage collector
// would. It sweeps an informer cache every few seconds, so an idle
// platform makes no requests for it.
type collector struct {
	c     client.Client // deletes
	cache client.Reader // lists
	log   logr.Logger
}

const gcPeriod = 3 * time.Second

func (g *collector) run(ctx context.Context) {
	t := time.NewTicker(gcPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := g.sweep(ctx); err != nil && ctx.Err() == nil {
				g.log.V(2).Info("garbage collection sweep failed", "err", err.Error())
			}
		}
	}
}

// sweep deletes every pod and service whose owners no longer exist.
func (g *collector) sweep(ctx context.Context) error {
	var pods corev1.PodList
	if err := g.cache.List(ctx, &pods); err != nil {
		return err
	}
	var svcs corev1.ServiceList
	if err := g.cache.List(ctx, &svcs); err != nil {
		return err
	}
	var deps []client.Object
	for i := range pods.Items {
		deps = append(deps, &pods.Items[i])
	}
	for i := range svcs.Items {
		deps = append(deps, &svcs.Items[i])
	}
	owners := map[schema.GroupVersionKind]map[types.UID]bool{}
	exists := func(ns string, ref metav1.OwnerReference) (bool, error) {
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		uids, ok := owners[gvk]
		if !ok {
			list := &unstructured.UnstructuredList{}
			list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			if err := g.cache.List(ctx, list); err != nil {
				return true, err // unknown kind: keep the dependent
			}
			uids = map[types.UID]bool{}
			for _, o := range list.Items {
				uids[o.GetUID()] = true
			}
			owners[gvk] = uids
		}
		return uids[ref.UID], nil
	}
	for _, d := range deps {
		refs := d.GetOwnerReferences()
		if len(refs) == 0 || d.GetDeletionTimestamp() != nil {
			continue
		}
		alive := false
		for _, r := range refs {
			ok, err := exists(d.GetNamespace(), r)
			if err != nil || ok {
				alive = true
				break
			}
		}
		if alive {
			continue
		}
		g.log.Info("deleting object whose owners are gone", "kind", kindOf(d), "object", client.ObjectKeyFromObject(d).String())
		uid := d.GetUID()
		if err := g.c.Delete(ctx, d, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return err
		}
	}
	return nil
}

func kindOf(o client.Object) string {
	switch o.(type) {
	case *corev1.Pod:
		return "Pod"
	case *corev1.Service:
		return "Service"
	}
	return "object"
}
