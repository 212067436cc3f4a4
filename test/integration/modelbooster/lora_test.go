package modelbooster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// TestLoRAChanges edits the adapters a booster's engine loads: the route's
// loraAdapters and the engine's start-up flags follow, and with no adapter
// left both drop them.
func TestLoRAChanges(t *testing.T) {
	ns := newNamespace(t)
	startManager(t, ns)
	mb := vllmBooster(ns, "m")
	mb.Spec.Backend.Workers[0].Config = config(map[string]any{"lora-modules": "sql=/adapters/sql"})
	if err := env.Client.Create(context.Background(), mb); err != nil {
		t.Fatal(err)
	}
	want := func(adapters []string, args ...string) func() error {
		return func() error {
			route := &networkingv1alpha1.ModelRoute{}
			ms := &workloadv1alpha1.ModelServing{}
			if err := exists(ns, "m", route); err != nil {
				return err
			}
			if err := exists(ns, "m-vllm", ms); err != nil {
				return err
			}
			if !slices.Equal(route.Spec.LoraAdapters, adapters) {
				return fmt.Errorf("route loraAdapters %v, want %v", route.Spec.LoraAdapters, adapters)
			}
			got := strings.Join(engineArgs(ms), " ")
			for _, a := range args {
				if strings.HasPrefix(a, "!") {
					if strings.Contains(got, a[1:]) {
						return fmt.Errorf("engine args %q still hold %q", got, a[1:])
					}
				} else if !strings.Contains(got, a) {
					return fmt.Errorf("engine args %q lack %q", got, a)
				}
			}
			return nil
		}
	}
	eventually(t, 30*time.Second, want([]string{"sql"}, "--enable-lora", "--lora-modules sql=/adapters/sql"))

	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Spec.Backend.Workers[0].Config = config(map[string]any{"lora-modules": []any{
			"sql=/adapters/sql", `{"name":"chat","path":"/adapters/chat","base_model_name":"qwen"}`}})
	})
	eventually(t, 30*time.Second, want([]string{"sql", "chat"}, "--enable-lora", `--lora-modules sql=/adapters/sql {"name":"chat"`))

	updateBooster(t, ns, "m", func(mb *workloadv1alpha1.ModelBooster) {
		mb.Spec.Backend.Workers[0].Config = config(map[string]any{"max-model-len": 4096})
	})
	eventually(t, 30*time.Second, want(nil, "!--enable-lora", "!--lora-modules"))
}

// TestAdmission refuses the boosters the controller could not generate,
// each with a message that names the field.
func TestAdmission(t *testing.T) {
	ns := newNamespace(t)
	many := make([]any, 11)
	for i := range many {
		many[i] = fmt.Sprintf("a%d=/adapters/%d", i, i)
	}
	cases := []struct {
		name   string
		mutate func(*workloadv1alpha1.ModelBooster)
		field  string
	}{
		{"prefill worker on vLLM", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Spec.Backend.Workers[0].Type = workloadv1alpha1.ModelWorkerTypePrefill
		}, "spec.backend.workers"},
		{"SGLang type", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Spec.Backend.Type = workloadv1alpha1.ModelBackendTypeSGLang
		}, "spec.backend.type"},
		{"too many adapters", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Spec.Backend.Workers[0].Config = config(map[string]any{"lora-modules": many})
		}, "spec.backend.workers[*].config.lora-modules"},
		{"adapter without a name", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Spec.Backend.Workers[0].Config = config(map[string]any{"lora-modules": "=/adapters/x"})
		}, "spec.backend.workers[0].config.lora-modules"},
		{"config not an object", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Spec.Backend.Workers[0].Config.Raw = []byte(`["--x"]`)
		}, "spec.backend.workers[0].config"},
		{"pod names too long", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Name = strings.Repeat("a", 60)
		}, "metadata.name"},
		{"autoscaling bound not a number", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Annotations = map[string]string{"autoscaling.kthena.io/max-replicas": "many"}
		}, "metadata.annotations[autoscaling.kthena.io/max-replicas]"},
		{"autoscaling minimum above the maximum", func(mb *workloadv1alpha1.ModelBooster) {
			mb.Annotations = map[string]string{"autoscaling.kthena.io/max-replicas": "2", "autoscaling.kthena.io/min-replicas": "3"}
		}, "metadata.annotations[autoscaling.kthena.io/min-replicas]"},
		{"prefill and decode connectors differ", func(mb *workloadv1alpha1.ModelBooster) {
			*mb = *pdBooster(ns, mb.Name, "NixlConnector")
			mb.Spec.Backend.Workers[1].Config = config(map[string]any{"kv-transfer-config": map[string]any{"kv_connector": "MooncakeConnectorV1", "kv_role": "kv_consumer"}})
		}, "spec.backend.workers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mb := vllmBooster(ns, "refused")
			c.mutate(mb)
			err := env.Client.Create(context.Background(), mb)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %s", err, c.field)
			}
		})
	}
}
