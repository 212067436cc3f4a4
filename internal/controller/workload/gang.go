package workload

import (
	"context"
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"
	volcanov1beta1 "volcano.sh/apis/pkg/apis/scheduling/v1beta1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// PodGroupCRDName is the CRD whose presence turns gang scheduling on.
const PodGroupCRDName = "podgroups.scheduling.volcano.sh"

// VolcanoSchedulerName is the schedulerName that asks for PodGroups.
const VolcanoSchedulerName = "volcano"

// gangSupport is what the cluster offers for gang scheduling.
type gangSupport struct {
	podGroups bool // the PodGroup CRD is established
	subGroups bool // its schema has spec.subGroupPolicy
}

// detectGang reads the PodGroup CRD from the cache (no discovery call per
// reconcile). A CRD event re-queues every ModelServing, so a CRD installed
// later is picked up.
func (r *Reconciler) detectGang(ctx context.Context) (gangSupport, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := r.Get(ctx, types.NamespacedName{Name: PodGroupCRDName}, &crd); err != nil {
		return gangSupport{}, client.IgnoreNotFound(err)
	}
	return crdGangSupport(&crd), nil
}

func crdGangSupport(crd *apiextensionsv1.CustomResourceDefinition) gangSupport {
	var s gangSupport
	if crd.DeletionTimestamp != nil {
		return s
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			s.podGroups = true
		}
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1beta1" || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		if spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]; ok {
			_, s.subGroups = spec.Properties["subGroupPolicy"]
		}
	}
	return s
}

// podGroupWatch starts watching PodGroups once their CRD exists.
type podGroupWatch struct {
	mu      sync.Mutex
	started bool
}

func (r *Reconciler) ensurePodGroupWatch() error {
	r.pgWatch.mu.Lock()
	defer r.pgWatch.mu.Unlock()
	if r.pgWatch.started || r.controller == nil {
		return nil
	}
	src := source.Kind(r.cache, client.Object(&volcanov1beta1.PodGroup{}),
		handler.EnqueueRequestForOwner(r.Scheme, r.RESTMapper(), &workloadv1alpha1.ModelServing{}, handler.OnlyControllerOwner()))
	if err := r.controller.Watch(src); err != nil {
		return err
	}
	r.pgWatch.started = true
	return nil
}

// minRoleReplicas is how many replicas of role must be gang-scheduled.
func minRoleReplicas(ms *workloadv1alpha1.ModelServing, role *workloadv1alpha1.Role) int32 {
	n := int32(roleReplicas(role))
	if gp := ms.Spec.Template.GangPolicy; gp != nil {
		if v, ok := gp.MinRoleReplicas[role.Name]; ok && v < n {
			return max(v, 0)
		}
	}
	return n
}

func addRequests(sum corev1.ResourceList, spec *corev1.PodSpec, times int64) {
	if times <= 0 {
		return
	}
	for _, c := range spec.Containers {
		for name, q := range c.Resources.Requests {
			q = q.DeepCopy()
			q.Mul(times)
			cur, ok := sum[name]
			if !ok {
				cur = resource.Quantity{}
			}
			cur.Add(q)
			sum[name] = cur
		}
	}
}

// podGroupSpec is the PodGroup spec of every group of ms:
// minMember = Σ roles (1+workers) × minRoleReplicas, minResources the
// container requests of those pods, the queue from the ModelServing's
// annotation, the group network topology, and with subGroups one
// subGroupPolicy per role (one sub-group per role replica).
func podGroupSpec(ms *workloadv1alpha1.ModelServing, subGroups bool) volcanov1beta1.PodGroupSpec {
	spec := volcanov1beta1.PodGroupSpec{Queue: ms.Annotations[workloadv1alpha1.VolcanoQueueAnnotationKey]}
	res := corev1.ResourceList{}
	for i := range ms.Spec.Template.Roles {
		role := &ms.Spec.Template.Roles[i]
		n := minRoleReplicas(ms, role)
		spec.MinMember += n * (role.WorkerReplicas + 1)
		addRequests(res, &role.EntryTemplate.Spec, int64(n))
		if role.WorkerTemplate != nil {
			addRequests(res, &role.WorkerTemplate.Spec, int64(n)*int64(role.WorkerReplicas))
		}
		if subGroups {
			sg := volcanov1beta1.SubGroupPolicySpec{
				Name: role.Name,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
					workloadv1alpha1.ModelServingNameLabelKey: ms.Name,
					workloadv1alpha1.RoleLabelKey:             role.Name,
				}},
				MatchLabelKeys: []string{workloadv1alpha1.RoleIDLabelKey},
				SubGroupSize:   ptr.To(role.WorkerReplicas + 1),
				MinSubGroups:   ptr.To(n),
			}
			if nt := ms.Spec.Template.NetworkTopology; nt != nil && nt.RolePolicy != nil {
				sg.NetworkTopology = nt.RolePolicy.DeepCopy()
			}
			spec.SubGroupPolicy = append(spec.SubGroupPolicy, sg)
		}
	}
	if len(res) > 0 {
		spec.MinResources = &res
	}
	if nt := ms.Spec.Template.NetworkTopology; nt != nil && nt.GroupPolicy != nil {
		spec.NetworkTopology = nt.GroupPolicy.DeepCopy()
	}
	return spec
}

// syncPodGroups makes one PodGroup per group when gang is on, updates those
// whose spec drifted and deletes the rest.
func (r *Reconciler) syncPodGroups(ctx context.Context, ms *workloadv1alpha1.ModelServing, p *plan, gs gangSupport) error {
	if !gs.podGroups {
		return nil
	}
	var have volcanov1beta1.PodGroupList
	if err := r.List(ctx, &have, client.InNamespace(ms.Namespace), client.MatchingLabels{workloadv1alpha1.ModelServingNameLabelKey: ms.Name}); err != nil {
		return err
	}
	desired := map[string]bool{}
	spec := podGroupSpec(ms, gs.subGroups)
	if p.gang {
		for i := range p.m.groups {
			desired[GroupName(ms.Name, i)] = true
		}
	}
	var errs []error
	for i := range have.Items {
		pg := &have.Items[i]
		if !ownedBy(pg, ms) {
			continue
		}
		if !desired[pg.Name] {
			if pg.DeletionTimestamp == nil {
				if err := r.Delete(ctx, pg, client.Preconditions{UID: &pg.UID}); client.IgnoreNotFound(err) != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		delete(desired, pg.Name)
		if want := mergePodGroupSpec(pg.Spec, spec); !equality.Semantic.DeepEqual(pg.Spec, want) {
			pg = pg.DeepCopy()
			pg.Spec = want
			if err := r.Update(ctx, pg); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for name := range desired {
		pg := &volcanov1beta1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ms.Namespace,
				Labels: map[string]string{
					workloadv1alpha1.ModelServingNameLabelKey: ms.Name,
					workloadv1alpha1.GroupNameLabelKey:        name,
				},
				OwnerReferences: []metav1.OwnerReference{ownerRef(ms)},
			},
			Spec: *spec.DeepCopy(),
		}
		if err := r.Create(ctx, pg); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mergePodGroupSpec is have with the fields the controller owns set from
// want. Fields it leaves unset (an empty queue, minTaskMember, the priority
// class) keep what the scheduler or its webhook put there, so a defaulted
// field never causes an update loop.
func mergePodGroupSpec(have, want volcanov1beta1.PodGroupSpec) volcanov1beta1.PodGroupSpec {
	out := *have.DeepCopy()
	w := want.DeepCopy()
	out.MinMember = w.MinMember
	out.MinResources = w.MinResources
	out.NetworkTopology = w.NetworkTopology
	out.SubGroupPolicy = w.SubGroupPolicy
	if w.Queue != "" {
		out.Queue = w.Queue
	}
	return out
}
