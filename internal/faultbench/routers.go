package faultbench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The router replicas run as pods of one Deployment behind one Service, as
// the Helm chart deploys them; the platform's service proxy forwards the
// Service's cluster IP to the ready, not terminating, pods.
const (
	routerName     = "faults-router"
	routerReplicas = 2
	// routerShutdownDelay is the chart's default networking.router.shutdownDelay.
	routerShutdownDelay = 5 * time.Second
)

var routerLabels = map[string]string{"app": routerName}

// useRouterService deploys the router replicas (once per run) and points the
// scenario's load at their Service.
func (e *env) useRouterService(ctx context.Context) error {
	if e.shared.routerServiceURL == "" {
		url, err := e.deployRouters(ctx)
		if err != nil {
			return err
		}
		e.shared.routerServiceURL = url
	}
	e.routerURL = e.shared.routerServiceURL
	return nil
}

// deployRouters creates the router Deployment, its service account with the
// chart's read permissions, and its Service, and returns the Service's URL.
func (e *env) deployRouters(ctx context.Context) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: routerName}}
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: routerName},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.serving.volcano.sh"}, Resources: []string{"externalmodelproviders", "modelroutes", "modelservers"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "secrets"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"workload.serving.volcano.sh"}, Resources: []string{"modelservings"}, Verbs: []string{"list", "patch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: routerName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: routerName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.ns, Name: routerName}},
	}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: routerName},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](routerReplicas),
			Selector: &metav1.LabelSelector{MatchLabels: routerLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: routerLabels},
				Spec: corev1.PodSpec{
					ServiceAccountName: routerName,
					// Longer than the shutdown delay plus the longest answer.
					TerminationGracePeriodSeconds: ptr.To[int64](90),
					Containers: []corev1.Container{{
						Name: "router", Image: "ghcr.io/kthena/kthena-router:latest",
						Args: []string{"--kubernetes", "--port=8080", "--metrics-port=9090", "--enable-webhook=false", "--access-log=false",
							"--shutdown-delay=" + routerShutdownDelay.String(), "--drain-timeout=60s"},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}},
							PeriodSeconds: 1, FailureThreshold: 1,
						},
					}},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: routerName},
		Spec: corev1.ServiceSpec{Selector: routerLabels,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	for _, obj := range []client.Object{sa, role, binding, dep, svc} {
		if err := e.c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	}
	if err := e.waitRouters(ctx, ""); err != nil {
		return "", err
	}
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
		return "", err
	}
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80")
	probe := Load{URL: url, Model: e.model, MaxTokens: 1, Deadline: 10 * time.Second}
	hc := &http.Client{}
	for deadline := time.Now().Add(time.Minute); ; {
		r := probe.one(hc, false, "ping")
		if r.Outcome == Succeeded {
			return url, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the router Service %s does not serve %s: %s", url, e.model, r.Detail)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// routerPods are the router Deployment's pods.
func (e *env) routerPods(ctx context.Context) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := e.c.List(ctx, &list, client.InNamespace(e.ns), client.MatchingLabels(routerLabels)); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// waitRouters waits until the Deployment has its replicas, all ready, and
// no other pod (gone names the pod that must have left).
func (e *env) waitRouters(ctx context.Context, gone string) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, err := e.routerPods(ctx)
		if err == nil {
			ready := 0
			for _, p := range pods {
				if p.Name == gone {
					ready = -len(pods)
					break
				}
				if p.DeletionTimestamp == nil && isReady(&p) {
					ready++
				}
			}
			if ready == routerReplicas && len(pods) == routerReplicas {
				return nil
			}
			err = fmt.Errorf("%d ready router pods of %d", max(ready, 0), len(pods))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("router replicas not settled after 3 minutes: %v", err)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// restartRouterReplica deletes one ready router pod, as a node drain or
// `kubectl delete pod` does: it gets SIGTERM, drains for its shutdown delay
// and exits while the Deployment brings up its replacement. The fault lasts
// until the old pod is gone and both replicas are ready.
func (e *env) restartRouterReplica(ctx context.Context) error {
	pods, err := e.routerPods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.DeletionTimestamp == nil && isReady(&p) {
			if err := e.c.Delete(ctx, &p); err != nil {
				return err
			}
			return e.waitRouters(ctx, p.Name)
		}
	}
	return fmt.Errorf("no ready router pod among %d", len(pods))
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rollRouters changes the router pods' template (an annotation, as
// `kubectl rollout restart` does): the Deployment replaces them one at a
// time, a new pod ready before an old one goes (the default maxSurge 25 %
// and maxUnavailable 25 % of two replicas: one and zero). The fault lasts
// until only new pods run, all ready.
func (e *env) rollRouters(ctx context.Context) error {
	var dep appsv1.Deployment
	for range 20 {
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: routerName}, &dep); err != nil {
			return err
		}
		if dep.Spec.Template.Annotations == nil {
			dep.Spec.Template.Annotations = map[string]string{}
		}
		dep.Spec.Template.Annotations["kthena.io/restartedAt"] = time.Now().Format(time.RFC3339Nano)
		err := e.c.Update(ctx, &dep)
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	old, err := e.routerPods(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var d appsv1.Deployment
		err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: routerName}, &d)
		if err == nil && d.Status.ObservedGeneration >= dep.Generation && d.Status.UpdatedReplicas == routerReplicas &&
			d.Status.AvailableReplicas == routerReplicas && d.Status.Replicas == routerReplicas {
			pods, err := e.routerPods(ctx)
			if err == nil && len(pods) == routerReplicas && !sharesPod(pods, old) {
				return e.waitRouters(ctx, "")
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("router rollout not done after 3 minutes: %+v", d.Status)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// sharesPod reports whether a pod of now was already in before.
func sharesPod(now, before []corev1.Pod) bool {
	for _, p := range now {
		for _, q := range before {
			if p.UID == q.UID {
				return true
			}
		}
	}
	return false
}
