package modelbooster

import (
	"context"
	"fmt"
	"testing"
	"time"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/modelbooster"
)

// TestAutoscaling asks for autoscaling with the booster's annotations: an
// AutoscalingPolicy targets the generated ModelServing (whole, or per role
// for prefill/decode), the replica counts become the autoscaler's (the
// controller no longer takes them back), and dropping the annotations
// removes the policy and hands the counts back to the booster.
func TestAutoscaling(t *testing.T) {
	ns := newNamespace(t)
	// The autoscaler itself is left out: the test plays it, so the counts
	// move only when the test says.
	startManager(t, ns, "*", "-autoscalingpolicy")
	mb := vllmBooster(ns, "m")
	mb.Annotations = map[string]string{
		modelbooster.MinReplicasAnnotation: "2",
		modelbooster.MaxReplicasAnnotation: "4",
		modelbooster.MetricAnnotation:      "kv_cache_usage=0.8",
	}
	pd := pdBooster(ns, "pd", "NixlConnector")
	pd.Annotations = map[string]string{modelbooster.MaxReplicasAnnotation: "3"}
	for _, b := range []*workloadv1alpha1.ModelBooster{mb, pd} {
		if err := env.Client.Create(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	policy, pdPolicy := &workloadv1alpha1.AutoscalingPolicy{}, &workloadv1alpha1.AutoscalingPolicy{}
	eventually(t, 30*time.Second, func() error {
		if err := exists(ns, "m-vllm", policy); err != nil {
			return err
		}
		return exists(ns, "pd-pd", pdPolicy)
	})
	golden(t, "autoscaling-homogeneous.yaml", policy)
	golden(t, "autoscaling-disaggregated.yaml", pdPolicy)
	get(t, ns, "m", mb)
	if err := controlledBy(policy, mb); err != nil {
		t.Error(err)
	}

	ms := &workloadv1alpha1.ModelServing{}
	get(t, ns, "m-vllm", ms)
	if *ms.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want the booster's 1 raised to min-replicas 2", *ms.Spec.Replicas)
	}
	pdMS := &workloadv1alpha1.ModelServing{}
	get(t, ns, "pd-pd", pdMS)
	for _, r := range pdMS.Spec.Template.Roles {
		if want := map[string]int32{"prefill": 2, "decode": 1}[r.Name]; *r.Replicas != want {
			t.Errorf("role %s replicas %d, want %d", r.Name, *r.Replicas, want)
		}
	}

	// The autoscaler's steps stand.
	ms.Spec.Replicas = ptr(int32(3))
	if err := env.Client.Update(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
	pdMS.Spec.Template.Roles[1].Replicas = ptr(int32(3))
	if err := env.Client.Update(context.Background(), pdMS); err != nil {
		t.Fatal(err)
	}
	// A booster change is reconciled with the scaled counts kept.
	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Spec.Backend.Workers[0].Config = config(map[string]any{"max-model-len": 2048})
	})
	eventually(t, 30*time.Second, func() error {
		return wantCondition(ns, "m", "Initialized", "True")
	})
	consistently(t, 2*time.Second, func() error {
		get(t, ns, "m-vllm", ms)
		get(t, ns, "pd-pd", pdMS)
		if *ms.Spec.Replicas != 3 || *pdMS.Spec.Template.Roles[1].Replicas != 3 {
			return fmt.Errorf("scaled counts taken back: %d, decode %d", *ms.Spec.Replicas, *pdMS.Spec.Template.Roles[1].Replicas)
		}
		return nil
	})

	// Autoscaling off: the policy goes, the booster's count comes back.
	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Annotations = nil
	})
	eventually(t, 30*time.Second, func() error {
		if err := gone(ns, "m-vllm", &workloadv1alpha1.AutoscalingPolicy{}); err != nil {
			return err
		}
		get(t, ns, "m-vllm", ms)
		if *ms.Spec.Replicas != 1 {
			return fmt.Errorf("replicas %d, want the booster's 1", *ms.Spec.Replicas)
		}
		return nil
	})
}
