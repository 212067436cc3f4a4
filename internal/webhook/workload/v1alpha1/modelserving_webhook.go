package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/validate-workload-serving-volcano-sh-v1alpha1-modelserving,mutating=false,failurePolicy=fail,sideEffects=None,groups=workload.serving.volcano.sh,resources=modelservings,verbs=create;update,versions=v1alpha1,name=vmodelserving.workload.serving.volcano.sh,admissionReviewVersions=v1

// SetupModelServingWebhook registers the validator with the manager's
// webhook server. knownPlugins lists the plugin names the controller has
// registered; nil accepts any name.
func SetupModelServingWebhook(mgr ctrl.Manager, knownPlugins sets.Set[string]) error {
	return ctrl.NewWebhookManagedBy(mgr).For(&workloadv1alpha1.ModelServing{}).WithValidator(&validation.Validator[*workloadv1alpha1.ModelServing]{
		Kind:     workloadv1alpha1.GroupVersion.WithKind("ModelServing").GroupKind(),
		Validate: func(ms *workloadv1alpha1.ModelServing) field.ErrorList { return ValidateModelServing(ms, knownPlugins) },
	}).Complete()
}

// ValidateModelServing returns every problem of ms, each naming its field.
// knownPlugins may be nil to skip the plugin-name check.
func ValidateModelServing(ms *workloadv1alpha1.ModelServing, knownPlugins sets.Set[string]) field.ErrorList {
	spec := &ms.Spec
	specPath := field.NewPath("spec")
	var errs field.ErrorList

	replicas := int32(1)
	if spec.Replicas != nil {
		replicas = *spec.Replicas
	}
	roleRolling := spec.RolloutStrategy != nil && spec.RolloutStrategy.Type == workloadv1alpha1.RoleRollingUpdate

	if rs := spec.RolloutStrategy; rs != nil {
		rsPath := specPath.Child("rolloutStrategy")
		if c := rs.RollingUpdateConfiguration; c != nil {
			cPath := rsPath.Child("rollingUpdateConfiguration")
			if roleRolling {
				errs = append(errs, field.Forbidden(cPath, "not allowed with type RoleRollingUpdate; set maxUnavailable and partition on each role instead"))
			}
			errs = append(errs, validation.IntOrPercent(c.MaxUnavailable, cPath.Child("maxUnavailable"))...)
			errs = append(errs, validation.IntOrPercent(c.MaxSurge, cPath.Child("maxSurge"))...)
			// An unset maxSurge is 0; maxUnavailable may be 0 only when
			// surge groups can carry the rollout.
			if validation.IsZero(c.MaxUnavailable) && (c.MaxSurge == nil || validation.IsZero(c.MaxSurge)) {
				errs = append(errs, field.Invalid(cPath.Child("maxUnavailable"), c.MaxUnavailable.String(), "must not be 0 while maxSurge is 0: the rollout could never proceed"))
			}
			errs = append(errs, validation.IntOrPercent(c.Partition, cPath.Child("partition"))...)
		}
		if es := rs.EvictionStrategy; es != nil {
			esPath := rsPath.Child("evictionStrategy")
			errs = append(errs, validation.IntOrPercent(es.MinAvailable, esPath.Child("minAvailable"))...)
			for role, v := range es.RoleMinAvailable {
				errs = append(errs, validation.IntOrPercent(&v, esPath.Child("roleMinAvailable").Key(role))...)
			}
		}
	}

	tplPath := specPath.Child("template")
	rolesPath := tplPath.Child("roles")
	roleReplicas := map[string]int32{}
	for i := range spec.Template.Roles {
		role := &spec.Template.Roles[i]
		rPath := rolesPath.Index(i)
		rr := int32(1)
		if role.Replicas != nil {
			rr = *role.Replicas
		}
		roleReplicas[role.Name] = rr
		for _, msg := range utilvalidation.IsDNS1035Label(role.Name) {
			errs = append(errs, field.Invalid(rPath.Child("name"), role.Name, msg))
		}
		// The highest-ordinal entry pod's name is also its headless Service's
		// name, so it must be a DNS-1035 label.
		longest := fmt.Sprintf("%s-%d-%s-%d-%d", ms.Name, max(replicas-1, 0), role.Name, max(rr-1, 0), role.WorkerReplicas)
		for _, msg := range utilvalidation.IsDNS1035Label(longest) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), ms.Name,
				fmt.Sprintf("with role %q the generated pod and service name %q is invalid: %s", role.Name, longest, msg)))
		}
		errs = append(errs, validation.PodSpec(&role.EntryTemplate.Spec, rPath.Child("entryTemplate", "spec"))...)
		if role.WorkerTemplate != nil {
			errs = append(errs, validation.PodSpec(&role.WorkerTemplate.Spec, rPath.Child("workerTemplate", "spec"))...)
		}
		if role.WorkerReplicas > 0 && role.WorkerTemplate == nil {
			errs = append(errs, field.Required(rPath.Child("workerTemplate"), "required when workerReplicas is above 0"))
		}
		if role.MaxUnavailable != nil || role.Partition != nil {
			if !roleRolling {
				if role.MaxUnavailable != nil {
					errs = append(errs, field.Forbidden(rPath.Child("maxUnavailable"), "only allowed with rolloutStrategy.type RoleRollingUpdate"))
				}
				if role.Partition != nil {
					errs = append(errs, field.Forbidden(rPath.Child("partition"), "only allowed with rolloutStrategy.type RoleRollingUpdate"))
				}
			}
			errs = append(errs, validation.IntOrPercent(role.MaxUnavailable, rPath.Child("maxUnavailable"))...)
			errs = append(errs, validation.IntOrPercent(role.Partition, rPath.Child("partition"))...)
			if validation.IsZero(role.MaxUnavailable) {
				errs = append(errs, field.Invalid(rPath.Child("maxUnavailable"), role.MaxUnavailable.String(), "must not be 0: the rollout could never proceed"))
			}
			if mu := role.MaxUnavailable; mu != nil && mu.Type == intstr.Int && mu.IntVal > rr {
				errs = append(errs, field.Invalid(rPath.Child("maxUnavailable"), mu.IntVal, fmt.Sprintf("must not exceed the role's replicas (%d)", rr)))
			}
		}
	}

	if rs := spec.RolloutStrategy; rs != nil && rs.EvictionStrategy != nil {
		es := rs.EvictionStrategy
		esPath := specPath.Child("rolloutStrategy", "evictionStrategy")
		if es.ProtectionLevel == workloadv1alpha1.ProtectionLevelRole {
			if es.MinAvailable != nil {
				errs = append(errs, field.Forbidden(esPath.Child("minAvailable"), "only allowed with protectionLevel ServingGroup; use roleMinAvailable"))
			}
			for _, role := range sets.List(sets.KeySet(es.RoleMinAvailable)) {
				if _, ok := roleReplicas[role]; !ok {
					errs = append(errs, field.NotFound(esPath.Child("roleMinAvailable").Key(role), role))
				}
			}
		} else if len(es.RoleMinAvailable) > 0 {
			errs = append(errs, field.Forbidden(esPath.Child("roleMinAvailable"), "only allowed with protectionLevel Role; use minAvailable"))
		}
	}

	if gp := spec.Template.GangPolicy; gp != nil {
		gPath := tplPath.Child("gangPolicy", "minRoleReplicas")
		for role, min := range gp.MinRoleReplicas {
			rr, ok := roleReplicas[role]
			switch {
			case !ok:
				errs = append(errs, field.NotFound(gPath.Key(role), role))
			case min < 0 || min > rr:
				errs = append(errs, field.Invalid(gPath.Key(role), min, fmt.Sprintf("must be between 0 and the role's replicas (%d)", rr)))
			}
		}
	}

	pluginNames := sets.New[string]()
	for i, p := range spec.Plugins {
		pPath := specPath.Child("plugins").Index(i)
		if pluginNames.Has(p.Name) {
			errs = append(errs, field.Duplicate(pPath.Child("name"), p.Name))
		}
		pluginNames.Insert(p.Name)
		if knownPlugins != nil && !knownPlugins.Has(p.Name) {
			errs = append(errs, field.NotSupported(pPath.Child("name"), p.Name, sets.List(knownPlugins)))
		}
		if p.Scope != nil {
			for j, r := range p.Scope.Roles {
				if _, ok := roleReplicas[r]; !ok {
					errs = append(errs, field.NotFound(pPath.Child("scope", "roles").Index(j), r))
				}
			}
		}
	}
	return errs
}
