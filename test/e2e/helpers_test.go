package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

const ns = "default"

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(v string) {
	s.mu.Lock()
	s.b.WriteString(v)
	s.mu.Unlock()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	clientOnce sync.Once
	k8s        client.Client
	clientErr  error
)

// kube returns a client of the platform's API server.
func kube(t *testing.T) client.Client {
	t.Helper()
	clientOnce.Do(func() {
		cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
		if err != nil {
			clientErr = err
			return
		}
		k8s, clientErr = client.New(cfg, client.Options{Scheme: platform.Scheme()})
	})
	if clientErr != nil {
		t.Fatal(clientErr)
	}
	return k8s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// simServing is a ModelServing of simulated vLLM engines labelled app=label.
func simServing(name, label string, replicas int32, args ...string) *workloadv1alpha1.ModelServing {
	base := []string{"--model", "sim-" + label, "--port", "8000", "--time-scale", "0.05"}
	return &workloadv1alpha1.ModelServing{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: workloadv1alpha1.ModelServingSpec{
			Replicas: ptr.To(replicas),
			Template: workloadv1alpha1.ServingGroup{Roles: []workloadv1alpha1.Role{{
				Name: "engine", Replicas: ptr.To[int32](1), WorkerReplicas: 0,
				EntryTemplate: workloadv1alpha1.PodTemplateSpec{
					Metadata: &workloadv1alpha1.Metadata{Labels: map[string]string{"app": label}},
					Spec: corev1.PodSpec{
						TerminationGracePeriodSeconds: ptr.To[int64](3),
						Containers: []corev1.Container{{
							Name: "engine", Image: "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1",
							Args:  append(base, args...),
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
							ReadinessProbe: &corev1.Probe{
								ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstrName("http")}},
								PeriodSeconds: 1, FailureThreshold: 1,
							},
						}},
					},
				},
			}}},
		},
	}
}

func modelServer(name, label string) *networkingv1alpha1.ModelServer {
	return &networkingv1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1alpha1.ModelServerSpec{
			Model:            ptr.To("sim-" + label),
			InferenceEngine:  networkingv1alpha1.VLLM,
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": label}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: 8000},
		},
	}
}

func simpleRoute(name, model, server string) *networkingv1alpha1.ModelRoute {
	return &networkingv1alpha1.ModelRoute{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1alpha1.ModelRouteSpec{
			ModelName: model,
			Rules:     []*networkingv1alpha1.Rule{{Name: "default", TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: server}}}},
		},
	}
}

// create creates objects and deletes them when the test ends.
func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	c := kube(t)
	for _, o := range objs {
		if err := c.Create(ctx(t), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
}

// readyPods lists the ready, not terminating pods labelled app=label.
func readyPods(t *testing.T, label string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := kube(t).List(ctx(t), &list, client.InNamespace(ns), client.MatchingLabels{"app": label}); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			out = append(out, p)
		}
	}
	return out
}

func allPods(t *testing.T, label string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := kube(t).List(ctx(t), &list, client.InNamespace(ns), client.MatchingLabels{"app": label}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waitReady(t *testing.T, label string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 60*time.Second, fmt.Sprintf("%d ready pods app=%s", n, label), func() error {
		pods = readyPods(t, label)
		if all := allPods(t, label); len(pods) != n || len(all) != n {
			return fmt.Errorf("%d ready of %d pods", len(pods), len(all))
		}
		return nil
	})
	return pods
}

// reply is one router answer.
type reply struct {
	status int
	body   string
	chosen string // pod name the router chose
}

// chat sends a chat completion through the router, asking for the
// scheduler's decision.
func chat(t *testing.T, model, prompt string, headers map[string]string) reply {
	t.Helper()
	return chatWithin(t, 30*time.Second, model, prompt, headers)
}

func chatWithin(t *testing.T, timeout time.Duration, model, prompt string, headers map[string]string) reply {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": model, "max_tokens": 4,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequest(http.MethodPost, env.routerURL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kthena-Decision", "1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return reply{status: 0, body: err.Error()}
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, body: string(data)}
	var d struct {
		Chosen string `json:"chosen"`
	}
	if json.Unmarshal([]byte(resp.Header.Get("X-Kthena-Decision")), &d) == nil {
		_, r.chosen, _ = strings.Cut(d.Chosen, "/")
	}
	return r
}

// waitServes waits until the router answers the model with 200.
func waitServes(t *testing.T, model string) {
	t.Helper()
	eventually(t, 30*time.Second, "router serves "+model, func() error {
		r := chat(t, model, "ping", nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		return nil
	})
}

func intstrName(name string) intstr.IntOrString { return intstr.FromString(name) }
