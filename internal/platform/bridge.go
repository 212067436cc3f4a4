package platform

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/provider/file"
)

// bridge feeds a router that has no Kubernetes provider: it writes the
// router's endpoints file (ModelServers, ModelRoutes and ready pods) from
// the API server, and the router reloads it on change.
type bridge struct {
	c    client.Client
	path string
	log  logr.Logger
	last []byte
}

const bridgePeriod = 250 * time.Millisecond

func (b *bridge) run(ctx context.Context) {
	t := time.NewTicker(bridgePeriod)
	defer t.Stop()
	for {
		if err := b.sync(ctx); err != nil && ctx.Err() == nil {
			b.log.V(2).Info("endpoints file update failed", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (b *bridge) sync(ctx context.Context) error {
	var servers networkingv1alpha1.ModelServerList
	if err := b.c.List(ctx, &servers); err != nil {
		return err
	}
	var routes networkingv1alpha1.ModelRouteList
	if err := b.c.List(ctx, &routes); err != nil {
		return err
	}
	var pods corev1.PodList
	if err := b.c.List(ctx, &pods); err != nil {
		return err
	}
	data, err := endpointsFile(servers.Items, routes.Items, pods.Items)
	if err != nil {
		return err
	}
	if bytes.Equal(data, b.last) {
		return nil
	}
	tmp := b.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, b.path); err != nil {
		return err
	}
	b.last = data
	return nil
}

func meta(o metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace, Labels: o.Labels, CreationTimestamp: o.CreationTimestamp}
}

// endpointsFile renders the router's standalone file.
func endpointsFile(servers []networkingv1alpha1.ModelServer, routes []networkingv1alpha1.ModelRoute, pods []corev1.Pod) ([]byte, error) {
	var buf bytes.Buffer
	doc := func(v any) error {
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		if buf.Len() > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(data)
		return nil
	}
	for _, s := range servers {
		if s.DeletionTimestamp != nil {
			continue
		}
		out := networkingv1alpha1.ModelServer{TypeMeta: metav1.TypeMeta{APIVersion: networkingv1alpha1.GroupVersion.String(), Kind: "ModelServer"}, ObjectMeta: meta(s.ObjectMeta), Spec: s.Spec}
		if err := doc(out); err != nil {
			return nil, err
		}
	}
	for _, r := range routes {
		if r.DeletionTimestamp != nil {
			continue
		}
		out := networkingv1alpha1.ModelRoute{TypeMeta: metav1.TypeMeta{APIVersion: networkingv1alpha1.GroupVersion.String(), Kind: "ModelRoute"}, ObjectMeta: meta(r.ObjectMeta), Spec: r.Spec}
		if err := doc(out); err != nil {
			return nil, err
		}
	}
	eps := file.Endpoints{Kind: "Endpoints", Endpoints: []file.Endpoint{}}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || !podReady(&p) {
			continue
		}
		eps.Endpoints = append(eps.Endpoints, file.Endpoint{Name: p.Name, Namespace: p.Namespace, Address: p.Status.PodIP, Labels: p.Labels})
	}
	sort.Slice(eps.Endpoints, func(i, j int) bool {
		return fmt.Sprint(eps.Endpoints[i].Namespace, "/", eps.Endpoints[i].Name) < fmt.Sprint(eps.Endpoints[j].Namespace, "/", eps.Endpoints[j].Name)
	})
	if err := doc(eps); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
