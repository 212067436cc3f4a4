package modelbooster

import (
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func apiutilGVK(obj client.Object) (schema.GroupVersionKind, error) {
	return apiutil.GVKForObject(obj, env.Scheme)
}

func config(m map[string]any) apiextensionsv1.JSON {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return apiextensionsv1.JSON{Raw: b}
}

func gpu(n string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Limits: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse(n)}}
}

// vllmBooster is an aggregated vLLM booster of one server worker.
func vllmBooster(ns, name string) *workloadv1alpha1.ModelBooster {
	return &workloadv1alpha1.ModelBooster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: workloadv1alpha1.ModelBoosterSpec{
			Name:  "qwen",
			Owner: "team-a",
			Backend: workloadv1alpha1.ModelBackend{
				Name:     "vllm",
				Type:     workloadv1alpha1.ModelBackendTypeVLLM,
				ModelURI: "hf://Qwen/Qwen2.5-0.5B-Instruct",
				Env:      []corev1.EnvVar{{Name: "HF_ENDPOINT", Value: "https://hf-mirror.example.com"}},
				Replicas: 1,
				Workers: []workloadv1alpha1.ModelWorker{{
					Type: workloadv1alpha1.ModelWorkerTypeServer, Image: "vllm/vllm-openai:v0.10.1", Replicas: 1, Pods: 1,
					Resources: gpu("1"),
					Config:    config(map[string]any{"max-model-len": 4096, "gpu_memory_utilization": 0.9, "enforce-eager": ""}),
				}},
			},
		},
	}
}

// pdBooster is a vLLM prefill/decode booster with connector c.
func pdBooster(ns, name, connector string) *workloadv1alpha1.ModelBooster {
	mb := vllmBooster(ns, name)
	mb.Spec.Backend.Name = "pd"
	mb.Spec.Backend.Type = workloadv1alpha1.ModelBackendTypeVLLMDisaggregated
	mb.Spec.Backend.CacheURI = "pvc://model-cache/weights"
	worker := func(t workloadv1alpha1.ModelWorkerType, role string, replicas int32) workloadv1alpha1.ModelWorker {
		return workloadv1alpha1.ModelWorker{
			Type: t, Image: "vllm/vllm-openai:v0.10.1", Replicas: replicas, Pods: 1, Resources: gpu("1"),
			Config: config(map[string]any{"port": 8100, "kv-transfer-config": map[string]any{"kv_connector": connector, "kv_role": role}}),
		}
	}
	mb.Spec.Backend.Workers = []workloadv1alpha1.ModelWorker{
		worker(workloadv1alpha1.ModelWorkerTypePrefill, "kv_producer", 2),
		worker(workloadv1alpha1.ModelWorkerTypeDecode, "kv_consumer", 1),
	}
	return mb
}
