// Package kubernetes is the router's cluster provider: a controller-runtime
// manager whose caches of ModelServers, ModelRoutes, ExternalModelProviders,
// their labelled credential Secrets and Pods feed the
// datastore through informer event handlers (no reconcile queue, so a pod
// that stops being ready leaves the store as soon as its event arrives).
// The same manager optionally serves the networking admission webhooks, as
// upstream's router does.
package kubernetes

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/provider"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

// Options configure the provider.
type Options struct {
	// Config reaches the API server.
	Config *rest.Config
	// Webhook, when set, makes the manager serve the networking group's
	// admission webhooks with these serving options.
	Webhook *kthenawebhook.ServingOptions
	// Namespace limits the caches to one namespace; empty watches all.
	Namespace string
	// OnExit is called if the manager stops with an error after Start
	// returned (for example the webhook port is taken); the command exits.
	OnExit func(error)
}

// Scheme is the scheme the provider's manager uses.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration
	}
	if err := networkingv1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// New returns the runner hook (runner.Options.KubernetesProvider): it builds
// the manager, registers the event handlers and webhooks, starts the manager
// in the background and calls synced once every cache has synced and its
// handlers have seen the initial list.
func New(o Options) func(ctx context.Context, store *datastore.Store, log logr.Logger, synced func()) error {
	return func(ctx context.Context, store *datastore.Store, log logr.Logger, synced func()) error {
		return start(ctx, o, store, log, synced)
	}
}

func start(ctx context.Context, o Options, store provider.Store, log logr.Logger, synced func()) error {
	if o.Config == nil {
		return errors.New("kubernetes provider: no API server configuration")
	}
	scheme := Scheme()
	mo := ctrl.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			// Only credential Secrets labelled for ExternalModelProviders.
			ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{
				networkingv1alpha1.ExternalModelProviderCredentialSecretLabel: networkingv1alpha1.ExternalModelProviderCredentialSecretLabelEnabled,
			})}},
		},
	}
	if o.Namespace != "" {
		mo.Cache.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	}
	if o.Webhook != nil {
		mo.WebhookServer = o.Webhook.Server()
	}
	mgr, err := ctrl.NewManager(o.Config, mo)
	if err != nil {
		return fmt.Errorf("kubernetes provider: %w", err)
	}
	if o.Webhook != nil {
		direct, err := client.New(o.Config, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("webhook certificates: %w", err)
		}
		renew, err := o.Webhook.Certificates(ctx, direct, kthenawebhook.NetworkingGroup)
		if err != nil {
			return err
		}
		if renew != nil {
			if err := mgr.Add(renew); err != nil {
				return err
			}
		}
		if err := kthenawebhook.SetupNetworking(mgr); err != nil {
			return fmt.Errorf("networking webhooks: %w", err)
		}
	}

	var regs []toolscache.InformerSynced
	add := func(obj client.Object, h toolscache.ResourceEventHandler) error {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("informer for %T: %w", obj, err)
		}
		reg, err := inf.AddEventHandler(h)
		if err != nil {
			return err
		}
		regs = append(regs, reg.HasSynced)
		return nil
	}
	if err := add(&networkingv1alpha1.ModelServer{}, handler[*networkingv1alpha1.ModelServer]{
		upsert: store.UpsertServer, remove: store.DeleteServer,
	}); err != nil {
		return err
	}
	if err := add(&networkingv1alpha1.ModelRoute{}, handler[*networkingv1alpha1.ModelRoute]{
		upsert: store.UpsertRoute, remove: store.DeleteRoute,
	}); err != nil {
		return err
	}
	if err := add(&corev1.Pod{}, handler[*corev1.Pod]{
		upsert: func(p *corev1.Pod) {
			if dp := readyPod(p); dp != nil {
				store.UpsertPod(dp)
			} else {
				store.DeletePod(p.Namespace, p.Name)
			}
		},
		remove: store.DeletePod,
	}); err != nil {
		return err
	}

	if err := add(&networkingv1alpha1.ExternalModelProvider{}, handler[*networkingv1alpha1.ExternalModelProvider]{
		upsert: store.UpsertProvider, remove: store.DeleteProvider,
	}); err != nil {
		return err
	}
	if err := add(&corev1.Secret{}, handler[*corev1.Secret]{
		upsert: func(s *corev1.Secret) { store.UpsertSecret(s.Namespace, s.Name, s.Data) },
		remove: store.DeleteSecret,
	}); err != nil {
		return err
	}

	go func() {
		if err := mgr.Start(ctx); err != nil {
			log.Error(err, "kubernetes provider stopped")
			if o.OnExit != nil {
				o.OnExit(err)
			}
		}
	}()
	go func() {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return
		}
		if toolscache.WaitForCacheSync(ctx.Done(), regs...) {
			log.Info("caches synced")
			synced()
		}
	}()
	return nil
}

// readyPod returns the datastore view of a pod that can take traffic, or
// nil: running, Ready, with an IP and not terminating.
func readyPod(p *corev1.Pod) *datastore.Pod {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return nil
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue {
				return nil
			}
			return &datastore.Pod{Namespace: p.Namespace, Name: p.Name, IP: p.Status.PodIP, Labels: p.Labels}
		}
	}
	return nil
}

// handler adapts typed store calls to informer events.
type handler[T client.Object] struct {
	upsert func(T)
	remove func(ns, name string)
}

func (h handler[T]) OnAdd(obj any, _ bool) {
	if o, ok := obj.(T); ok {
		h.upsert(o)
	}
}

func (h handler[T]) OnUpdate(_, obj any) { h.OnAdd(obj, false) }

func (h handler[T]) OnDelete(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if o, ok := obj.(client.Object); ok {
		h.remove(o.GetNamespace(), o.GetName())
	}
}
