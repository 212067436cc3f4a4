package nodeagent

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// startShell runs script in its own process group, as the agent runs
// containers, and returns its pgid and a channel closed when it exits.
func startShell(t *testing.T, script string) (int, chan struct{}) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })
	return cmd.Process.Pid, exited
}

func newTestWorker() *podWorker {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}}
	return newPodWorker(New(Options{Client: fake.NewClientset()}), pod)
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: not done after 30s", what)
	}
}

// TestPreStopBeforeSIGTERM: the preStop hook finishes before the container
// gets SIGTERM, and a container that exits on SIGTERM is not killed.
func TestPreStopBeforeSIGTERM(t *testing.T) {
	dir := t.TempDir()
	marker, result := filepath.Join(dir, "prestop"), filepath.Join(dir, "result")
	// On SIGTERM the container records whether the hook had run, and exits.
	pgid, exited := startShell(t, `trap 'if [ -e `+marker+` ]; then echo after > `+result+`; else echo before > `+result+`; fi; exit 0' TERM; while :; do sleep 0.05; done`)
	c := &container{spec: corev1.Container{Name: "engine", Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 0.3; touch " + marker}}}}}}
	w := newTestWorker()
	done := make(chan struct{})
	go func() { w.stopContainer(c, pgid, exited, 20*time.Second); close(done) }()
	waitClosed(t, done, "stopContainer")
	waitClosed(t, exited, "container exit")
	got, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("container did not see SIGTERM: %v", err)
	}
	if strings.TrimSpace(string(got)) != "after" {
		t.Fatalf("SIGTERM arrived %s the preStop hook finished", strings.TrimSpace(string(got)))
	}
}

// TestPreStopBoundedByGrace: a hook longer than the grace period is cut
// short, and a container that ignores SIGTERM is killed minKillGrace later.
func TestPreStopBoundedByGrace(t *testing.T) {
	pgid, exited := startShell(t, `trap '' TERM; while :; do sleep 0.05; done`)
	c := &container{spec: corev1.Container{Name: "engine", Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
		Sleep: &corev1.SleepAction{Seconds: 3600}}}}}
	w := newTestWorker()
	start := time.Now()
	done := make(chan struct{})
	go func() { w.stopContainer(c, pgid, exited, time.Second); close(done) }()
	waitClosed(t, done, "stopContainer")
	waitClosed(t, exited, "container exit after SIGKILL")
	// Far below the hour the hook asked for; the bound itself is the
	// grace period plus minKillGrace.
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("stopping took %s", took)
	}
}

// TestPreStopHandlers: sleep, exec (with the container's environment) and
// a hook without a handler.
func TestPreStopHandlers(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	ctr := &corev1.Container{Name: "c"}
	ctx := t.Context()
	if err := runPreStop(ctx, &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo $ENGINE_PORT > " + out}}},
		ctr, "127.0.0.1", []string{"ENGINE_PORT=8000"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); strings.TrimSpace(string(got)) != "8000" {
		t.Errorf("exec hook saw ENGINE_PORT=%q", got)
	}
	if err := runPreStop(ctx, &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}}, ctr, "", nil); err == nil {
		t.Error("failing exec hook reported success")
	}
	if err := runPreStop(ctx, &corev1.LifecycleHandler{}, ctr, "", nil); err == nil || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("empty hook: %v", err)
	}
}
