package validation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestIntOrPercent(t *testing.T) {
	for _, tc := range []struct {
		in    intstr.IntOrString
		valid bool
	}{
		{intstr.FromInt32(0), true},
		{intstr.FromInt32(3), true},
		{intstr.FromInt32(-1), false},
		{intstr.FromString("0%"), true},
		{intstr.FromString("100%"), true},
		{intstr.FromString("101%"), false},
		{intstr.FromString("-5%"), false},
		{intstr.FromString("5"), false},
		{intstr.FromString("abc%"), false},
		{intstr.FromString("05%"), false},
	} {
		errs := IntOrPercent(&tc.in, field.NewPath("x"))
		if (len(errs) == 0) != tc.valid {
			t.Errorf("%s: valid=%v, errors %v", tc.in.String(), tc.valid, errs)
		}
	}
}

func TestPodSpec(t *testing.T) {
	ok := corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "vllm/vllm-openai:v0.11.0"}}}
	if errs := PodSpec(&ok, field.NewPath("spec")); len(errs) != 0 {
		t.Fatalf("valid spec rejected: %v", errs)
	}
	for name, spec := range map[string]corev1.PodSpec{
		"no containers":   {},
		"empty image":     {Containers: []corev1.Container{{Name: "a"}}},
		"space in image":  {Containers: []corev1.Container{{Name: "a", Image: "vllm openai"}}},
		"bad name":        {Containers: []corev1.Container{{Name: "A_b", Image: "x"}}},
		"duplicate name":  {Containers: []corev1.Container{{Name: "a", Image: "x"}, {Name: "a", Image: "y"}}},
		"bad env name":    {Containers: []corev1.Container{{Name: "a", Image: "x", Env: []corev1.EnvVar{{Name: "1=bad"}}}}},
		"bad port number": {Containers: []corev1.Container{{Name: "a", Image: "x", Ports: []corev1.ContainerPort{{ContainerPort: 70000}}}}},
	} {
		if errs := PodSpec(&spec, field.NewPath("spec")); len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
	}
}
