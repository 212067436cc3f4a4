// Package wrappers builds API objects for tests in a readable chain:
// wrappers.MakeModelServing(ns, name).Replicas(2).Role(wrappers.MakeRole("prefill").Obj()).Obj().
package wrappers

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// DefaultImage is the image of the wrappers' containers.
const DefaultImage = "nginx:1.28.2"

// ModelServingWrapper builds a ModelServing.
type ModelServingWrapper struct{ workloadv1alpha1.ModelServing }

// MakeModelServing returns a ModelServing with one replica, no roles and the
// default scheduler (so no PodGroups unless a test asks for volcano).
func MakeModelServing(ns, name string) *ModelServingWrapper {
	return &ModelServingWrapper{workloadv1alpha1.ModelServing{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: workloadv1alpha1.ModelServingSpec{
			Replicas:      ptr.To[int32](1),
			SchedulerName: "default-scheduler",
		},
	}}
}

// Obj returns the ModelServing.
func (w *ModelServingWrapper) Obj() *workloadv1alpha1.ModelServing { return w.ModelServing.DeepCopy() }

func (w *ModelServingWrapper) Replicas(n int32) *ModelServingWrapper {
	w.Spec.Replicas = ptr.To(n)
	return w
}

func (w *ModelServingWrapper) SchedulerName(s string) *ModelServingWrapper {
	w.Spec.SchedulerName = s
	return w
}

func (w *ModelServingWrapper) Role(r workloadv1alpha1.Role) *ModelServingWrapper {
	w.Spec.Template.Roles = append(w.Spec.Template.Roles, r)
	return w
}

func (w *ModelServingWrapper) RecoveryPolicy(p workloadv1alpha1.RecoveryPolicy) *ModelServingWrapper {
	w.Spec.RecoveryPolicy = p
	return w
}

func (w *ModelServingWrapper) RestartGracePeriodSeconds(s int64) *ModelServingWrapper {
	w.Spec.Template.RestartGracePeriodSeconds = ptr.To(s)
	return w
}

// GroupRollingUpdate sets ServingGroupRollingUpdate with the budget and partition.
func (w *ModelServingWrapper) GroupRollingUpdate(maxUnavailable, partition *intstr.IntOrString) *ModelServingWrapper {
	w.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{
		Type:                       workloadv1alpha1.ServingGroupRollingUpdate,
		RollingUpdateConfiguration: &workloadv1alpha1.RollingUpdateConfiguration{MaxUnavailable: maxUnavailable, Partition: partition},
	}
	return w
}

// RoleRollingUpdate sets RoleRollingUpdate (budgets are on the roles).
func (w *ModelServingWrapper) RoleRollingUpdate() *ModelServingWrapper {
	w.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{Type: workloadv1alpha1.RoleRollingUpdate}
	return w
}

func (w *ModelServingWrapper) GangPolicy(minRoleReplicas map[string]int32) *ModelServingWrapper {
	w.Spec.Template.GangPolicy = &workloadv1alpha1.GangPolicy{MinRoleReplicas: minRoleReplicas}
	return w
}

func (w *ModelServingWrapper) NetworkTopology(group, role *volcanov1beta1.NetworkTopologySpec) *ModelServingWrapper {
	w.Spec.Template.NetworkTopology = &workloadv1alpha1.NetworkTopology{GroupPolicy: group, RolePolicy: role}
	return w
}

func (w *ModelServingWrapper) Annotation(k, v string) *ModelServingWrapper {
	if w.Annotations == nil {
		w.Annotations = map[string]string{}
	}
	w.Annotations[k] = v
	return w
}

// Plugin appends a built-in plugin with a raw JSON config ("" for none).
func (w *ModelServingWrapper) Plugin(name, config string, scope *workloadv1alpha1.PluginScope) *ModelServingWrapper {
	ps := workloadv1alpha1.PluginSpec{Name: name, Type: workloadv1alpha1.PluginTypeBuiltIn, Scope: scope}
	if config != "" {
		ps.Config = &apiextensionsv1.JSON{Raw: []byte(config)}
	}
	w.Spec.Plugins = append(w.Spec.Plugins, ps)
	return w
}

// RoleWrapper builds a Role.
type RoleWrapper struct{ workloadv1alpha1.Role }

// MakeRole returns a role with one replica, no workers and one container.
func MakeRole(name string) *RoleWrapper {
	return &RoleWrapper{workloadv1alpha1.Role{
		Name:          name,
		Replicas:      ptr.To[int32](1),
		EntryTemplate: workloadv1alpha1.PodTemplateSpec{Spec: podSpec(DefaultImage)},
	}}
}

func podSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: image}}}
}

// Obj returns the role.
func (w *RoleWrapper) Obj() workloadv1alpha1.Role { return *w.Role.DeepCopy() }

func (w *RoleWrapper) Replicas(n int32) *RoleWrapper {
	w.Role.Replicas = ptr.To(n)
	return w
}

// Workers gives each replica n worker pods of the default image.
func (w *RoleWrapper) Workers(n int32) *RoleWrapper {
	w.WorkerReplicas = n
	if n > 0 && w.WorkerTemplate == nil {
		w.WorkerTemplate = &workloadv1alpha1.PodTemplateSpec{Spec: podSpec(DefaultImage)}
	}
	return w
}

// Image sets the image of the entry and worker containers.
func (w *RoleWrapper) Image(image string) *RoleWrapper {
	w.EntryTemplate.Spec.Containers[0].Image = image
	if w.WorkerTemplate != nil {
		w.WorkerTemplate.Spec.Containers[0].Image = image
	}
	return w
}

// Requests sets the container requests of the entry and worker pods.
func (w *RoleWrapper) Requests(rl corev1.ResourceList) *RoleWrapper {
	w.EntryTemplate.Spec.Containers[0].Resources.Requests = rl
	if w.WorkerTemplate != nil {
		w.WorkerTemplate.Spec.Containers[0].Resources.Requests = rl
	}
	return w
}

func (w *RoleWrapper) EntryLabels(l map[string]string) *RoleWrapper {
	if w.EntryTemplate.Metadata == nil {
		w.EntryTemplate.Metadata = &workloadv1alpha1.Metadata{}
	}
	w.EntryTemplate.Metadata.Labels = l
	return w
}

func (w *RoleWrapper) Env(name, value string) *RoleWrapper {
	c := &w.EntryTemplate.Spec.Containers[0]
	c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	return w
}

func (w *RoleWrapper) MaxUnavailable(v intstr.IntOrString) *RoleWrapper {
	w.Role.MaxUnavailable = &v
	return w
}

func (w *RoleWrapper) Partition(v intstr.IntOrString) *RoleWrapper {
	w.Role.Partition = &v
	return w
}
