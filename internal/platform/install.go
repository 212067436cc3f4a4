package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/config"
	"github.com/kthena/kthena/internal/webhook"
)

// Scheme has the built-in kinds, the CRD kind and Kthena's kinds.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme,
		workloadv1alpha1.AddToScheme, networkingv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // static registration
		}
	}
	return s
}

// installCRDs creates or updates every embedded CRD and waits until they
// are established.
func installCRDs(ctx context.Context, c client.Client) (int, error) {
	files, err := fs.Glob(config.CRDs, "crd/bases/*.yaml")
	if err != nil {
		return 0, err
	}
	names := make([]string, len(files))
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, err := config.CRDs.ReadFile(f)
			if err != nil {
				errs[i] = err
				return
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.Unmarshal(data, crd); err != nil {
				errs[i] = fmt.Errorf("%s: %w", f, err)
				return
			}
			if err := apply(ctx, c, crd); err != nil {
				errs[i] = fmt.Errorf("installing CRD %s: %w", crd.Name, err)
			}
			names[i] = crd.Name
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: n}, crd); err == nil && established(crd) {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("CRD %s not established", n)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return len(names), nil
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// installWebhooks points a group's webhook configurations at a local
// webhook server by URL.
func installWebhooks(ctx context.Context, c client.Client, group webhook.Group, baseURL string, ca []byte) error {
	v, m, err := webhook.Configurations(group, webhook.URLClientConfig(baseURL, ca))
	if err != nil {
		return err
	}
	if err := apply(ctx, c, v); err != nil {
		return err
	}
	return apply(ctx, c, m)
}

// removeWebhooks deletes a group's configurations (used when the server
// behind them does not exist in this build).
func removeWebhooks(ctx context.Context, c client.Client, group webhook.Group) error {
	v, m, err := webhook.Configurations(group, webhook.URLClientConfig("https://unused", nil))
	if err != nil {
		return err
	}
	for _, o := range []client.Object{
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: v.ObjectMeta},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: m.ObjectMeta},
	} {
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// ensureNamespace creates a namespace when missing.
func ensureNamespace(ctx context.Context, c client.Client, name string) error {
	ns := &corev1.Namespace{}
	ns.Name = name
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// apply creates obj or replaces the existing one's spec with it.
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	err := c.Create(ctx, obj)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := obj.DeepCopyObject().(client.Object)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
		return err
	}
	obj.SetResourceVersion(existing.GetResourceVersion())
	return c.Update(ctx, obj)
}
