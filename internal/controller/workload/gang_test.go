package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestPodGroupSpec(t *testing.T) {
	cpu := func(s string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(s)}
	}
	cases := []struct {
		name      string
		gang      map[string]int32
		minMember int32
		cpu       string
	}{
		// p: 3 replicas of (1 entry + 2 workers) at 1 cpu; d: 2 replicas of 1 pod at 500m.
		{"all replicas", nil, 3*3 + 2*1, "10"},
		{"min role replicas", map[string]int32{"p": 1}, 1*3 + 2*1, "4"},
		{"min above replicas is clamped", map[string]int32{"d": 7}, 3*3 + 2*1, "10"},
		{"zero", map[string]int32{"p": 0, "d": 0}, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := wrappers.MakeModelServing("ns", "m").
				Role(wrappers.MakeRole("p").Replicas(3).Workers(2).Requests(cpu("1")).Obj()).
				Role(wrappers.MakeRole("d").Replicas(2).Requests(cpu("500m")).Obj())
			if c.gang != nil {
				w.GangPolicy(c.gang)
			}
			spec := podGroupSpec(w.Obj(), true)
			if spec.MinMember != c.minMember {
				t.Errorf("minMember = %d, want %d", spec.MinMember, c.minMember)
			}
			got := ""
			if spec.MinResources != nil {
				q := (*spec.MinResources)[corev1.ResourceCPU]
				got = q.String()
			}
			if got != c.cpu && !(c.cpu == "" && got == "0") {
				t.Errorf("cpu = %q, want %q", got, c.cpu)
			}
			if len(spec.SubGroupPolicy) != 2 || *spec.SubGroupPolicy[0].SubGroupSize != 3 || *spec.SubGroupPolicy[1].SubGroupSize != 1 {
				t.Errorf("subGroupPolicy = %+v", spec.SubGroupPolicy)
			}
		})
	}
	if spec := podGroupSpec(wrappers.MakeModelServing("ns", "m").Role(wrappers.MakeRole("p").Obj()).Obj(), false); spec.SubGroupPolicy != nil {
		t.Error("subGroupPolicy without schema support")
	}
	ms := wrappers.MakeModelServing("ns", "m").Annotation(workloadv1alpha1.VolcanoQueueAnnotationKey, "q").Role(wrappers.MakeRole("p").Obj()).Obj()
	if spec := podGroupSpec(ms, false); spec.Queue != "q" {
		t.Errorf("queue = %q", spec.Queue)
	}
}

func TestMergePodGroupSpecKeepsDefaultedQueue(t *testing.T) {
	ms := wrappers.MakeModelServing("ns", "m").Role(wrappers.MakeRole("p").Obj()).Obj()
	want := podGroupSpec(ms, false)
	have := want
	have.Queue = "default" // set by Volcano's webhook
	if got := mergePodGroupSpec(have, want); got.Queue != "default" || got.MinMember != want.MinMember {
		t.Fatalf("merged = %+v", got)
	}
}

func TestCRDGangSupport(t *testing.T) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if s := crdGangSupport(crd); s.podGroups || s.subGroups {
		t.Fatalf("not established: %+v", s)
	}
	crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	crd.Spec.Versions = []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1beta1", Schema: &apiextensionsv1.CustomResourceValidation{
		OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {Properties: map[string]apiextensionsv1.JSONSchemaProps{"minMember": {}}},
		}},
	}}}
	if s := crdGangSupport(crd); !s.podGroups || s.subGroups {
		t.Fatalf("legacy: %+v", s)
	}
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["subGroupPolicy"] = apiextensionsv1.JSONSchemaProps{}
	if s := crdGangSupport(crd); !s.podGroups || !s.subGroups {
		t.Fatalf("current: %+v", s)
	}
}
