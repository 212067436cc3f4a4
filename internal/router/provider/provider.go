// Package provider holds what the router's resource sources (a file, or a
// Kubernetes cluster) have in common: the store they write into. The
// sources themselves live in the sub-packages.
package provider

import (
	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
)

// Store is what a provider writes into.
type Store interface {
	UpsertRoute(*networkingv1alpha1.ModelRoute)
	DeleteRoute(ns, name string)
	UpsertServer(*networkingv1alpha1.ModelServer)
	DeleteServer(ns, name string)
	UpsertPod(*datastore.Pod)
	DeletePod(ns, name string)
	UpsertProvider(*networkingv1alpha1.ExternalModelProvider)
	DeleteProvider(ns, name string)
	UpsertSecret(ns, name string, data map[string][]byte)
	DeleteSecret(ns, name string)
}

var _ Store = (*datastore.Store)(nil)
