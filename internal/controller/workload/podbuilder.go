package workload

import (
	"context"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	volcanobatchv1alpha1 "volcano.sh/apis/pkg/apis/batch/v1alpha1"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/workload/plugins"
)

// podSpecInput is everything that decides one pod.
type podSpecInput struct {
	ms       *workloadv1alpha1.ModelServing
	group    int
	role     *workloadv1alpha1.Role
	roleIdx  int
	worker   int // 0 = entry
	revision string
	roleHash string
	gang     bool
	surge    bool
	plugins  *plugins.Chain
}

func ownerRef(ms *workloadv1alpha1.ModelServing) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         workloadv1alpha1.GroupVersion.String(),
		Kind:               "ModelServing",
		Name:               ms.Name,
		UID:                ms.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

// unitLabels are the labels of everything that belongs to a role replica.
func unitLabels(ms string, group int, role string, roleIdx int) map[string]string {
	return map[string]string{
		workloadv1alpha1.ModelServingNameLabelKey: ms,
		workloadv1alpha1.GroupNameLabelKey:        GroupName(ms, group),
		workloadv1alpha1.RoleLabelKey:             role,
		workloadv1alpha1.RoleIDLabelKey:           RoleID(role, roleIdx),
	}
}

// buildPod returns the pod for in: the role's entry or worker template with
// the system labels, the template's own labels and annotations over them,
// the scheduler, the injected env, the owner reference, and the plugins applied.
func buildPod(ctx context.Context, in podSpecInput) (*corev1.Pod, error) {
	ms, role := in.ms, in.role
	tmpl := &role.EntryTemplate
	if in.worker > 0 && role.WorkerTemplate != nil {
		tmpl = role.WorkerTemplate
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            PodName(ms.Name, in.group, role.Name, in.roleIdx, in.worker),
			Namespace:       ms.Namespace,
			Labels:          unitLabels(ms.Name, in.group, role.Name, in.roleIdx),
			Annotations:     map[string]string{},
			OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
	// Template labels and annotations first; the controller's own labels win,
	// since it finds its pods by them.
	if tmpl.Metadata != nil {
		for k, v := range tmpl.Metadata.Labels {
			if _, system := pod.Labels[k]; !system {
				pod.Labels[k] = v
			}
		}
		for k, v := range tmpl.Metadata.Annotations {
			pod.Annotations[k] = v
		}
	}
	pod.Labels[workloadv1alpha1.RevisionLabelKey] = in.revision
	pod.Labels[workloadv1alpha1.RoleTemplateHashLabelKey] = in.roleHash
	if in.surge {
		pod.Labels[SurgeLabelKey] = "true"
	} else {
		delete(pod.Labels, SurgeLabelKey)
	}
	if in.worker == 0 {
		pod.Labels[workloadv1alpha1.EntryLabelKey] = "true"
	} else {
		delete(pod.Labels, workloadv1alpha1.EntryLabelKey)
	}
	if ms.Spec.SchedulerName != "" {
		pod.Spec.SchedulerName = ms.Spec.SchedulerName
	}
	if in.gang {
		pod.Annotations[volcanov1beta1.KubeGroupNameAnnotationKey] = GroupName(ms.Name, in.group)
		pod.Annotations[volcanobatchv1alpha1.TaskSpecKey] = RoleID(role.Name, in.roleIdx)
	}
	env := []corev1.EnvVar{
		{Name: workloadv1alpha1.GroupSizeEnv, Value: strconv.Itoa(int(role.WorkerReplicas) + 1)},
		{Name: workloadv1alpha1.EntryAddressEnv, Value: EntryAddress(ms.Name, ms.Namespace, in.group, role.Name, in.roleIdx)},
		{Name: workloadv1alpha1.WorkerIndexEnv, Value: strconv.Itoa(in.worker)},
	}
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].Env = plugins.SetEnv(pod.Spec.Containers[i].Env, env...)
	}
	for i := range pod.Spec.InitContainers {
		pod.Spec.InitContainers[i].Env = plugins.SetEnv(pod.Spec.InitContainers[i].Env, env...)
	}
	if in.plugins != nil && in.plugins.Len() > 0 {
		if err := in.plugins.OnPodCreate(ctx, hookRequest(ms, in.group, role.Name, in.roleIdx, in.worker, pod)); err != nil {
			return nil, err
		}
	}
	return pod, nil
}

func hookRequest(ms *workloadv1alpha1.ModelServing, group int, role string, roleIdx, worker int, pod *corev1.Pod) *plugins.HookRequest {
	return &plugins.HookRequest{
		ModelServing: ms,
		ServingGroup: GroupName(ms.Name, group),
		GroupIndex:   group,
		RoleName:     role,
		RoleID:       RoleID(role, roleIdx),
		IsEntry:      worker == 0,
		WorkerIndex:  worker,
		Pod:          pod,
	}
}
