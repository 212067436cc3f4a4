package nodeagent

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestProbeOnce(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host, portStr, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(portStr)
	ctr := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	httpProbe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromString("http")}}}
	tcpProbe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}}
	ctx := context.Background()

	if err := probeOnce(ctx, httpProbe, ctr, host, nil); err != nil {
		t.Errorf("healthy HTTP probe failed: %v", err)
	}
	healthy.Store(false)
	if err := probeOnce(ctx, httpProbe, ctr, host, nil); err == nil {
		t.Error("HTTP probe passed on a 503")
	}
	if err := probeOnce(ctx, tcpProbe, ctr, host, nil); err != nil {
		t.Errorf("TCP probe on a listening port failed: %v", err)
	}
	srv.Close()
	if err := probeOnce(ctx, tcpProbe, ctr, host, nil); err == nil {
		t.Error("TCP probe passed on a closed port")
	}
	named := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("nope")}}}
	if err := probeOnce(ctx, named, ctr, host, nil); err == nil {
		t.Error("probe on an unknown named port passed")
	}

	exec := func(cmd ...string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}}
	}
	if err := probeOnce(ctx, exec("sh", "-c", `test "$READY" = yes`), ctr, host, []string{"READY=yes"}); err != nil {
		t.Errorf("exec probe with the container's env failed: %v", err)
	}
	if err := probeOnce(ctx, exec("sh", "-c", "exit 3"), ctr, host, nil); err == nil {
		t.Error("exec probe exiting 3 passed")
	}
}
