package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/workload/plugins"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/test/wrappers"
)

// TestPluginsApplied: plugins shape the pods, within their scope, and a
// plugin that cannot be built is reported and creates nothing.
func TestPluginsApplied(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	startManager(t, ns)
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").
		Plugin("demo-pod-tweaks", `{"annotations":{"tweaked":"yes"},"env":[{"name":"EXTRA","value":"1"}]}`,
			&workloadv1alpha1.PluginScope{Target: workloadv1alpha1.PluginTargetWorker}).
		Role(wrappers.MakeRole("r").Workers(1).Obj()).Obj())
	waitAvailable(t, ns, "m", 1)
	entry, worker := getPod(t, ns, "m-0-r-0-0"), getPod(t, ns, "m-0-r-0-1")
	if worker.Annotations["tweaked"] != "yes" || envOf(worker.Spec.Containers[0], "EXTRA") != "1" {
		t.Errorf("worker not tweaked: %v", worker.Annotations)
	}
	if entry.Annotations["tweaked"] != "" {
		t.Error("entry tweaked although the scope is Worker")
	}

	create(t, wrappers.MakeModelServing(ns, "broken").Plugin("no-such-plugin", "", nil).Role(wrappers.MakeRole("r").Obj()).Obj())
	eventually(t, 10*time.Second, func() error {
		var evs corev1.EventList
		if err := env.Client.List(t.Context(), &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "broken" && e.Reason == "PluginError" {
				return nil
			}
		}
		return fmt.Errorf("no PluginError event")
	})
	if pods := listPods(t, ns, map[string]string{workloadv1alpha1.ModelServingNameLabelKey: "broken"}); len(pods) != 0 {
		t.Errorf("pods created despite the plugin error: %v", podNames(pods))
	}
}

// readyRecorder is a test plugin that counts OnPodReady calls per pod.
type readyRecorder struct {
	mu    sync.Mutex
	calls map[string]int
}

func (r *readyRecorder) Name() string { return "ready-recorder" }
func (r *readyRecorder) OnPodCreate(_ context.Context, req *plugins.HookRequest) error {
	if req.Pod.Labels == nil {
		req.Pod.Labels = map[string]string{}
	}
	req.Pod.Labels["recorded"] = "true"
	return nil
}
func (r *readyRecorder) OnPodReady(_ context.Context, req *plugins.HookRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[req.Pod.Name]++
	return nil
}

// TestPluginOnPodReady: a registered plugin sees every pod once when it
// first becomes ready.
func TestPluginOnPodReady(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	rec := &readyRecorder{calls: map[string]int{}}
	reg := plugins.NewBuiltInRegistry()
	reg.MustRegister("ready-recorder", func([]byte) (plugins.Plugin, error) { return rec, nil })
	startManagerWith(t, ns, controllermanager.Extra{Plugins: reg})
	startKubelet(t, ns, 0)
	create(t, wrappers.MakeModelServing(ns, "m").Replicas(2).Plugin("ready-recorder", "", nil).Role(wrappers.MakeRole("r").Workers(1).Obj()).Obj())
	waitAvailable(t, ns, "m", 2)
	check := func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.calls) != 4 {
			return fmt.Errorf("OnPodReady calls %v", rec.calls)
		}
		for name, n := range rec.calls {
			if n != 1 {
				return fmt.Errorf("pod %s announced %d times", name, n)
			}
		}
		return nil
	}
	eventually(t, 10*time.Second, check)
	markCost(t, ns, map[string]string{workloadv1alpha1.GroupNameLabelKey: "m-0"}, 1) // more reconciles
	consistently(t, time.Second, check)
	if getPod(t, ns, "m-1-r-0-1").Labels["recorded"] != "true" {
		t.Error("OnPodCreate not applied")
	}
}
