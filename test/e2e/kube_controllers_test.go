package e2e

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// TestDeploymentAndGarbageCollection: kube-controller-manager runs a
// Deployment's pods, and deleting the Deployment collects its ReplicaSet
// and pods through owner references.
func TestDeploymentAndGarbageCollection(t *testing.T) {
	label := "kcm-deploy"
	pod := simServing(label, label, 1).Spec.Template.Roles[0].EntryTemplate
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: label, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": label}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": label}}, Spec: pod.Spec},
		},
	}
	create(t, d)
	waitReady(t, label, 2)
	if err := kube(t).Delete(ctx(t), d); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the Deployment's ReplicaSet and pods collected", func() error {
		var rs appsv1.ReplicaSetList
		if err := kube(t).List(ctx(t), &rs, client.InNamespace(ns), client.MatchingLabels{"app": label}); err != nil {
			return err
		}
		if n := len(allPods(t, label)); len(rs.Items) != 0 || n != 0 {
			return fmt.Errorf("%d ReplicaSets, %d pods left", len(rs.Items), n)
		}
		return nil
	})
}

// TestHPAOnModelServing: a HorizontalPodAutoscaler scales a ModelServing
// through its scale subresource (here to its minReplicas: the platform has
// no resource-metrics server), and the disruption controller makes
// evictions honour the ModelServing's eviction budget.
func TestHPAOnModelServing(t *testing.T) {
	label := "kcm-hpa"
	ms := simServing(label, label, 1)
	ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{
		Type: workloadv1alpha1.ServingGroupRollingUpdate,
		EvictionStrategy: &workloadv1alpha1.EvictionStrategySpec{
			ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: ptr.To(intstr.FromInt32(2))},
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: label, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{
				APIVersion: workloadv1alpha1.GroupVersion.String(), Kind: "ModelServing", Name: label},
			MinReplicas: ptr.To[int32](2),
			MaxReplicas: 3,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)}}}},
		},
	}
	create(t, ms, hpa)
	pods := waitReady(t, label, 2)
	if r := replicasOf(t, label); r != 2 {
		t.Fatalf("ModelServing replicas %d, want the HPA's minimum 2", r)
	}

	evict := func(p *corev1.Pod) error {
		return kube(t).SubResource("eviction").Create(ctx(t), p, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns}})
	}
	// Budget: keep both groups, so no pod may go.
	eventually(t, 30*time.Second, "the disruption controller observed the budget", func() error {
		var pdb policyv1.PodDisruptionBudget
		if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: ns, Name: label}, &pdb); err != nil {
			return err
		}
		if pdb.Status.ObservedGeneration != pdb.Generation || pdb.Status.ExpectedPods != 2 {
			return fmt.Errorf("status %+v", pdb.Status)
		}
		return nil
	})
	if err := evict(&pods[0]); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction against a budget that allows none: %v, want 429", err)
	}
	// Budget: keep one group, so one pod may go.
	eventually(t, 10*time.Second, "budget lowered", func() error {
		var cur workloadv1alpha1.ModelServing
		if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: ns, Name: label}, &cur); err != nil {
			return err
		}
		cur.Spec.RolloutStrategy.EvictionStrategy.MinAvailable = ptr.To(intstr.FromInt32(1))
		return kube(t).Update(ctx(t), &cur)
	})
	eventually(t, 30*time.Second, "one pod evicted", func() error { return evict(&pods[0]) })
	waitReady(t, label, 2) // the ModelServing controller replaces it
}
