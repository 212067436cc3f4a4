package modelbooster

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// TestBackends generates every backend kind and compares the ModelServing,
// ModelServer and ModelRoute with golden files; every object is controlled
// by the booster (the garbage collector's cascade needs nothing more).
func TestBackends(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	multiNode := vllmBooster(ns, "multinode")
	multiNode.Spec.Backend.Workers[0].Pods = 2
	multiNode.Spec.Backend.Workers[0].Config = config(map[string]any{"tensor-parallel-size": 1, "pipeline-parallel-size": 2})
	multiNode.Spec.Backend.CacheURI = "hostpath:///var/cache/models"
	onPVC := vllmBooster(ns, "onpvc")
	onPVC.Spec.Backend.ModelURI = "pvc://models/qwen/0.5b"
	onPVC.Spec.Backend.CacheURI = "pvc://models"
	withLoRA := vllmBooster(ns, "lora")
	withLoRA.Spec.Backend.Workers[0].Config = config(map[string]any{"lora-modules": []any{"sql=/adapters/sql", "chat=/adapters/chat"}, "max-lora-rank": 64})
	cases := []struct {
		golden string
		mb     *workloadv1alpha1.ModelBooster
	}{
		{"vllm.yaml", vllmBooster(ns, "aggregated")},
		{"vllm-multinode.yaml", multiNode},
		{"vllm-pvc.yaml", onPVC},
		{"vllm-lora.yaml", withLoRA},
		{"vllm-pd-nixl.yaml", pdBooster(ns, "nixl", "NixlConnector")},
		{"vllm-pd-lmcache.yaml", pdBooster(ns, "lmcache", "LMCacheConnectorV1")},
		{"vllm-pd-mooncake.yaml", pdBooster(ns, "mooncake", "MooncakeConnectorV1")},
	}
	for _, c := range cases {
		if err := env.Client.Create(context.Background(), c.mb); err != nil {
			t.Fatalf("%s: %v", c.golden, err)
		}
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			name := c.mb.Name + "-" + c.mb.Spec.Backend.Name
			ms, srv, route := &workloadv1alpha1.ModelServing{}, &networkingv1alpha1.ModelServer{}, &networkingv1alpha1.ModelRoute{}
			eventually(t, 30*time.Second, func() error {
				if err := exists(ns, name, ms); err != nil {
					return err
				}
				if err := exists(ns, name, srv); err != nil {
					return err
				}
				return exists(ns, c.mb.Name, route)
			})
			golden(t, c.golden, ms, srv, route)
			mb := &workloadv1alpha1.ModelBooster{}
			get(t, ns, c.mb.Name, mb)
			for _, obj := range []client.Object{ms, srv, route} {
				if err := controlledBy(obj, mb); err != nil {
					t.Error(err)
				}
			}
			eventually(t, 30*time.Second, func() error {
				return wantCondition(ns, c.mb.Name, string(workloadv1alpha1.ModelStatusConditionTypeInitialized), "True")
			})
			if err := hasEvent(t, ns, c.mb.Name, "Created"); err != nil {
				t.Error(err)
			}
		})
	}
}

// controlledBy checks obj's controller reference names mb with
// controller=true and blockOwnerDeletion, which is what lets the garbage
// collector delete obj with mb (foreground deletion waits for it).
func controlledBy(obj client.Object, mb *workloadv1alpha1.ModelBooster) error {
	refs := obj.GetOwnerReferences()
	if len(refs) != 1 {
		return fmt.Errorf("%s: owner references %+v, want one", obj.GetName(), refs)
	}
	r := refs[0]
	if r.UID != mb.UID || r.Kind != "ModelBooster" || r.Controller == nil || !*r.Controller || r.BlockOwnerDeletion == nil || !*r.BlockOwnerDeletion {
		return fmt.Errorf("%s: owner reference %+v does not make booster %s (%s) its controller", obj.GetName(), r, mb.Name, mb.UID)
	}
	return nil
}

// podsOf lists the pods of a ModelServing.
func podsOf(t *testing.T, ns, ms string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns),
		client.MatchingLabels{workloadv1alpha1.ModelServingNameLabelKey: ms}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}
