package serviceproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

// backend is an HTTP server on a loopback address that answers its name.
func backend(t *testing.T, ip, name string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func pod(name, ip string, port int, ready bool) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": "a"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

// TestProxy: connections to a Service's cluster IP reach the ready pods it
// selects (named target port, round robin), not the unready ones, and the
// listener goes with the Service.
func TestProxy(t *testing.T) {
	portA := backend(t, "127.5.0.1", "a")
	portB := backend(t, "127.5.0.2", "b")
	portC := backend(t, "127.5.0.3", "c")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: corev1.ServiceSpec{ClusterIP: "127.6.0.1", Selector: map[string]string{"app": "a"},
			Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromString("http")}}},
	}
	c := fake.NewClientset(svc, pod("a", "127.5.0.1", portA, true), pod("b", "127.5.0.2", portB, true), pod("c", "127.5.0.3", portC, false))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(Options{Client: c, Log: logr.Discard()}).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (string, error) {
		res, err := hc.Get("http://127.6.0.1:8080/")
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := get(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("service never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for range 20 {
		name, err := get()
		if err != nil {
			t.Fatal(err)
		}
		seen[name]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["c"] != 0 {
		t.Fatalf("answers by backend %v: want both ready pods and never the unready one", seen)
	}

	if err := c.CoreV1().Services("ns").Delete(ctx, "s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.6.0.1", strconv.Itoa(8080)), time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still open after the Service was deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyTerminatingPod: once a pod is terminating (or no longer ready)
// new connections go to the other pods at once, while a connection already
// forwarded to it stays up, so that the pod can finish what it serves and
// close it itself (a draining router answers with Connection: close).
func TestProxyTerminatingPod(t *testing.T) {
	portA := backend(t, "127.5.1.1", "a")
	portB := backend(t, "127.5.1.2", "b")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: corev1.ServiceSpec{ClusterIP: "127.6.1.1", Selector: map[string]string{"app": "a"},
			Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromString("http")}}},
	}
	c := fake.NewClientset(svc, pod("a", "127.5.1.1", portA, true), pod("b", "127.5.1.2", portB, true))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(Options{Client: c, Log: logr.Discard()}).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// A kept-alive connection that the proxy forwarded to pod a.
	var conn net.Conn
	var rd *bufio.Reader
	ask := func() (string, error) {
		if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: s\r\n\r\n"); err != nil {
			return "", err
		}
		res, err := http.ReadResponse(rd, nil)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if conn, err = net.DialTimeout("tcp", "127.6.1.1:8080", time.Second); err == nil {
			rd = bufio.NewReader(conn)
			if name, err := ask(); err == nil && name == "a" {
				break
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection reached pod a")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { conn.Close() })

	p, err := c.CoreV1().Pods("ns").Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	p.DeletionTimestamp = &now
	if _, err := c.CoreV1().Pods("ns").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() string {
		res, err := hc.Get("http://127.6.1.1:8080/")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	// The informer sees the deletion shortly; from then on only b answers.
	deadline = time.Now().Add(10 * time.Second)
	for streak := 0; streak < 20; {
		if get() == "b" {
			streak++
		} else {
			streak = 0
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections still reach the terminating pod")
		}
	}
	if name, err := ask(); err != nil || name != "a" {
		t.Fatalf("the connection already forwarded to the terminating pod: %q %v", name, err)
	}
}
