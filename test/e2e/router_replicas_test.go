package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kthena/kthena/internal/testing/loadgen"
)

// TestRouterReplicaDeletedBehindService: two router pods of a Deployment
// behind a Service, reached through its cluster IP (the platform's service
// proxy, as kube-proxy); one pod is deleted under keep-alive load. The proxy
// gives the terminating pod no new connection, the draining router closes
// each kept-alive connection after its response, and no request fails.
func TestRouterReplicaDeletedBehindService(t *testing.T) {
	const name = "e2e-router"
	labels := map[string]string{"app": name}
	create(t, simServing("replicas", "replicas", 1), modelServer("replicas", "replicas"), simpleRoute("replicas", "replicas", "replicas"))
	create(t,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"networking.serving.volcano.sh"}, Resources: []string{"externalmodelproviders", "modelroutes", "modelservers"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "secrets"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"workload.serving.volcano.sh"}, Resources: []string{"modelservings"}, Verbs: []string{"list", "patch"}},
		}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				ServiceAccountName: name, TerminationGracePeriodSeconds: ptr.To[int64](30),
				Containers: []corev1.Container{{Name: "router", Image: "ghcr.io/kthena/kthena-router:latest",
					Args: []string{"--kubernetes", "--port=8080", "--metrics-port=9090", "--enable-webhook=false", "--access-log=false",
						"--shutdown-delay=2s", "--drain-timeout=20s"},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
						ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}},
				}},
			}},
		}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: labels,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}},
	)
	waitReady(t, "replicas", 1)
	waitReady(t, name, 2)
	var svc corev1.Service
	if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/v1/chat/completions"
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(hc.CloseIdleConnections)
	post := func() error {
		body, _ := json.Marshal(map[string]any{"model": "replicas", "max_tokens": 4,
			"messages": []map[string]string{{"role": "user", "content": "through the Service"}}})
		res, err := hc.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer func() { _ = res.Body.Close() }()
		data, err := io.ReadAll(res.Body)
		if err == nil && res.StatusCode != http.StatusOK {
			err = fmt.Errorf("%d %s", res.StatusCode, data)
		}
		return err
	}
	eventually(t, time.Minute, "the Service answers", post)

	load := loadgen.Start(t, 4, post)
	time.Sleep(500 * time.Millisecond)
	victim := readyPods(t, name)[0]
	if err := kube(t).Delete(ctx(t), &victim); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the deleted router gone and two ready", func() error {
		all := allPods(t, name)
		for _, p := range all {
			if p.UID == victim.UID {
				return fmt.Errorf("%s still there", p.Name)
			}
		}
		if r := readyPods(t, name); len(r) != 2 || len(all) != 2 {
			return fmt.Errorf("%d ready of %d", len(r), len(all))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	res := load.StopNoneFailed(t, "while a router replica was replaced")
	t.Logf("%d requests while a router replica was replaced, none failed", res.Sent)
}
