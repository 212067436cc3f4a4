package cli

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestStatus: one screen of every kind, with counts read from status and
// from the pods a ModelServer selects.
func TestStatus(t *testing.T) {
	ns := namespace(t, "cli-status")
	golden(t, "status-empty", kthenaOK(t, "status", "-n", ns))
	objs := createSamples(t, ns)
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ModelServing":
			obj.Object["status"] = map[string]any{"replicas": int64(2), "availableReplicas": int64(1), "updatedReplicas": int64(2)}
		case "AutoscalingPolicy":
			obj.Object["status"] = map[string]any{"disaggregatedStatus": map[string]any{"roles": []any{
				map[string]any{"name": "prefill", "currentReplicas": int64(1), "desiredReplicas": int64(2)},
				map[string]any{"name": "decode", "currentReplicas": int64(1), "desiredReplicas": int64(1)},
			}}}
		default:
			continue
		}
		if err := env.Client.Status().Update(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	// Two pods of the ModelServer deepseek-pd (its selector is the
	// sample's), one ready.
	server := sample(t, "networking_v1alpha1_modelserver.yaml")
	labels, _, _ := unstructured.NestedStringMap(server.Object, "spec", "workloadSelector", "matchLabels")
	for i, ready := range []corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "engine-" + string(rune('a'+i)), Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "sim"}}},
		}
		if err := env.Client.Create(t.Context(), pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
		if err := env.Client.Status().Update(t.Context(), pod); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "status", kthenaOK(t, "status", "-n", ns))
}
