package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// childPID is the PID of this platform's child started from binary, or 0.
func childPID(binary string) int { return platform.ChildPID(binary, env.stateDir) }

// killChild SIGKILLs the platform child started from binary and waits
// until the supervisor has started a new one.
func killChild(t *testing.T, name, binary string) {
	t.Helper()
	old := childPID(binary)
	if old == 0 {
		t.Fatalf("no %s process (%s)", name, binary)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, name+" restarted", func() error {
		if pid := childPID(binary); pid == 0 || pid == old {
			return fmt.Errorf("pid %d (killed %d)", pid, old)
		}
		if !strings.Contains(env.out.String(), name+" exited (signal: killed); restarting in") {
			return fmt.Errorf("kthena up did not report the restart")
		}
		return nil
	})
}

// scaleTo sets the ModelServing's replicas and waits for that many ready
// pods: proof that the API server, the controller manager and the node
// agent work together.
func scaleTo(t *testing.T, name, label string, n int32) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s scaled to %d", name, n), func() error {
		var ms workloadv1alpha1.ModelServing
		if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, &ms); err != nil {
			return err
		}
		ms.Spec.Replicas = ptr.To(n)
		return kube(t).Update(ctx(t), &ms)
	})
	waitReady(t, label, int(n))
}

// TestSupervisedChildren: `kthena up` restarts a crashed router, controller
// manager, kube-apiserver and etcd, and keeps serving and reconciling.
func TestSupervisedChildren(t *testing.T) {
	create(t, simServing("supervised", "supervised", 1), modelServer("supervised", "supervised"), simpleRoute("supervised", "supervised", "supervised"))
	waitReady(t, "supervised", 1)
	waitServes(t, "supervised")

	killChild(t, "kthena-router", filepath.Join(env.binDir, "kthena-router"))
	waitServes(t, "supervised")

	killChild(t, "kthena-controller-manager", filepath.Join(env.binDir, "kthena-controller-manager"))
	scaleTo(t, "supervised", "supervised", 2)

	for _, name := range []string{"kube-apiserver", "etcd"} {
		binary := ""
		for _, line := range processesMentioning(env.stateDir) {
			_, cmdline, _ := strings.Cut(line, ": ")
			if argv0, _, _ := strings.Cut(cmdline, " "); filepath.Base(argv0) == name {
				binary = argv0
			}
		}
		if binary == "" {
			t.Fatalf("no %s process of this platform", name)
		}
		killChild(t, name, binary)
	}
	scaleTo(t, "supervised", "supervised", 1)
	waitServes(t, "supervised")
	if r := chat(t, "supervised", "after every restart", nil); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
