package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// TestModelServingLifecycle: create, pods running, traffic served, scale
// up and down, rolling update to new engine args, delete cleans up.
func TestModelServingLifecycle(t *testing.T) {
	c := kube(t)
	ms := simServing("life", "life", 1)
	create(t, ms, modelServer("life", "life"), simpleRoute("life", "life", "life"))
	pods := waitReady(t, "life", 1)
	if ip := pods[0].Status.PodIP; !strings.HasPrefix(ip, "127.") {
		t.Errorf("pod IP %q is not a loopback address", ip)
	}
	if pods[0].Spec.NodeName != "kthena-local" {
		t.Errorf("pod bound to %q, want kthena-local", pods[0].Spec.NodeName)
	}
	waitServes(t, "life")

	scale := func(n int32) {
		t.Helper()
		eventually(t, 10*time.Second, "scale", func() error {
			cur := &workloadv1alpha1.ModelServing{}
			if err := c.Get(ctx(t), client.ObjectKeyFromObject(ms), cur); err != nil {
				return err
			}
			cur.Spec.Replicas = ptr.To(n)
			return c.Update(ctx(t), cur)
		})
	}
	scale(2)
	pods = waitReady(t, "life", 2)
	if pods[0].Status.PodIP == pods[1].Status.PodIP {
		t.Errorf("two pods share the IP %s", pods[0].Status.PodIP)
	}
	served := map[string]bool{}
	eventually(t, 20*time.Second, "both pods serve", func() error {
		r := chat(t, "life", fmt.Sprintf("hello %d", time.Now().UnixNano()), nil)
		if r.status != http.StatusOK {
			return fmt.Errorf("status %d: %s", r.status, r.body)
		}
		served[r.chosen] = true
		if len(served) < 2 {
			return fmt.Errorf("served by %v", served)
		}
		return nil
	})
	scale(1)
	waitReady(t, "life", 1)

	// Rolling update to new engine arguments.
	eventually(t, 10*time.Second, "update args", func() error {
		cur := &workloadv1alpha1.ModelServing{}
		if err := c.Get(ctx(t), client.ObjectKeyFromObject(ms), cur); err != nil {
			return err
		}
		ctr := &cur.Spec.Template.Roles[0].EntryTemplate.Spec.Containers[0]
		ctr.Args = append(ctr.Args, "--seed", "42")
		return c.Update(ctx(t), cur)
	})
	eventually(t, 60*time.Second, "pods run the new args", func() error {
		pods := readyPods(t, "life")
		all := allPods(t, "life")
		if len(pods) != 1 || len(all) != 1 {
			return fmt.Errorf("%d ready of %d", len(pods), len(all))
		}
		if !slices.Contains(pods[0].Spec.Containers[0].Args, "42") {
			return fmt.Errorf("pod %s still has args %v", pods[0].Name, pods[0].Spec.Containers[0].Args)
		}
		return nil
	})
	waitServes(t, "life")

	if err := c.Delete(ctx(t), ms); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "pods deleted with their ModelServing", func() error {
		if n := len(allPods(t, "life")); n > 0 {
			return fmt.Errorf("%d pods left", n)
		}
		return nil
	})
}

// TestEngineKillRestart: a killed engine process makes its pod restart,
// and the router stops sending to it until it is ready again.
func TestEngineKillRestart(t *testing.T) {
	// The engine answers /health with 503 for 3s after each start, so the
	// restarted pod stays unready long enough to observe.
	// restartGracePeriodSeconds lets the pod recover in place (the node
	// agent restarts the container) before the controller would rebuild it.
	ms := simServing("crash", "crash", 2, "--startup-delay", "3s")
	ms.Spec.Template.RestartGracePeriodSeconds = ptr.To[int64](120)
	create(t, ms, modelServer("crash", "crash"), simpleRoute("crash", "crash", "crash"))
	pods := waitReady(t, "crash", 2)
	waitServes(t, "crash")
	victim := pods[0]
	pid := containerPID(t, &victim)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing engine process group %d: %v", pid, err)
	}
	eventually(t, 10*time.Second, "the killed pod is reported unready", func() error {
		for _, p := range allPods(t, "crash") {
			if p.Name == victim.Name && !podReady(&p) {
				return nil
			}
		}
		return fmt.Errorf("%s still ready", victim.Name)
	})
	// While it restarts, the router sends everything to the other pod.
	for i := range 10 {
		r := chat(t, "crash", fmt.Sprintf("while restarting %d", i), nil)
		if r.status != http.StatusOK {
			t.Fatalf("request during the restart failed: %d %s", r.status, r.body)
		}
		if r.chosen == victim.Name {
			p := podNamed(t, "crash", victim.Name)
			if p != nil && !podReady(p) {
				t.Fatalf("the router sent a request to unready pod %s", victim.Name)
			}
		}
	}
	eventually(t, 30*time.Second, "the killed pod restarts and is ready", func() error {
		p := podNamed(t, "crash", victim.Name)
		if p == nil {
			return fmt.Errorf("pod %s gone", victim.Name)
		}
		st := p.Status.ContainerStatuses
		if len(st) != 1 || st[0].RestartCount < 1 || !podReady(p) {
			return fmt.Errorf("restartCount %v ready %v", st, podReady(p))
		}
		if st[0].LastTerminationState.Terminated == nil || st[0].LastTerminationState.Terminated.ExitCode != 128+9 {
			return fmt.Errorf("last termination %+v, want exit code 137", st[0].LastTerminationState)
		}
		return nil
	})
	eventually(t, 20*time.Second, "the restarted pod serves again", func() error {
		r := chat(t, "crash", fmt.Sprintf("after restart %d", time.Now().UnixNano()), nil)
		if r.chosen != victim.Name {
			return fmt.Errorf("served by %q (status %d)", r.chosen, r.status)
		}
		return nil
	})
	out, err := exec.Command(filepath.Join(env.binDir, "kthena"), "logs", victim.Name, "--state-dir", env.stateDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restarted (restart 1)") {
		t.Errorf("kthena logs %s: err %v, output without the restart marker:\n%s", victim.Name, err, out)
	}
}

func podNamed(t *testing.T, label, name string) *corev1.Pod {
	for _, p := range allPods(t, label) {
		if p.Name == name {
			return &p
		}
	}
	return nil
}

func containerPID(t *testing.T, p *corev1.Pod) int {
	t.Helper()
	if len(p.Status.ContainerStatuses) == 0 {
		t.Fatalf("pod %s has no container status", p.Name)
	}
	id := p.Status.ContainerStatuses[0].ContainerID
	pid, err := strconv.Atoi(strings.TrimPrefix(id, "kthena://"))
	if err != nil {
		t.Fatalf("container ID %q: %v", id, err)
	}
	return pid
}

// TestUnknownImageFails: a pod whose image has no local runner fails with
// an event that says how to add one; a plain pod (any schedulerName) is
// bound to the node like ModelServing pods.
func TestUnknownImageFails(t *testing.T) {
	pod := &corev1.Pod{}
	pod.Name, pod.Namespace = "no-runner", ns
	pod.Spec.SchedulerName = "volcano"
	pod.Spec.Containers = []corev1.Container{{Name: "web", Image: "nginx:1.28.2"}}
	create(t, pod)
	eventually(t, 20*time.Second, "the pod fails with a NoRunner event", func() error {
		got := &corev1.Pod{}
		if err := kube(t).Get(ctx(t), client.ObjectKeyFromObject(pod), got); err != nil {
			return err
		}
		if got.Spec.NodeName != "kthena-local" || got.Status.Phase != corev1.PodFailed || got.Status.Reason != "NoRunner" {
			return fmt.Errorf("node %q phase %q reason %q", got.Spec.NodeName, got.Status.Phase, got.Status.Reason)
		}
		var events corev1.EventList
		if err := kube(t).List(ctx(t), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.InvolvedObject.Name == pod.Name && e.Reason == "NoRunner" && strings.Contains(e.Message, "runner table") {
				return nil
			}
		}
		return fmt.Errorf("no NoRunner event explaining the runner table")
	})
}
