package v1alpha1

import (
	"fmt"
	"math"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/webhook/defaulting"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/mutate-workload-serving-volcano-sh-v1alpha1-autoscalingpolicy,mutating=true,failurePolicy=fail,sideEffects=None,groups=workload.serving.volcano.sh,resources=autoscalingpolicies,verbs=create;update,versions=v1alpha1,name=mautoscalingpolicy.workload.serving.volcano.sh,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-workload-serving-volcano-sh-v1alpha1-autoscalingpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=workload.serving.volcano.sh,resources=autoscalingpolicies,verbs=create;update,versions=v1alpha1,name=vautoscalingpolicy.workload.serving.volcano.sh,admissionReviewVersions=v1

// maxBehaviorDuration bounds every period, window and hold of a policy.
const maxBehaviorDuration = 30 * time.Minute

// SetupAutoscalingPolicyWebhook registers the defaulting and validating
// webhooks with the manager's webhook server.
func SetupAutoscalingPolicyWebhook(mgr ctrl.Manager) error {
	mgr.GetWebhookServer().Register("/mutate-workload-serving-volcano-sh-v1alpha1-autoscalingpolicy",
		&webhook.Admission{Handler: defaulting.Handler(DefaultAutoscalingPolicy)})
	return ctrl.NewWebhookManagedBy(mgr).For(&workloadv1alpha1.AutoscalingPolicy{}).WithValidator(&validation.Validator[*workloadv1alpha1.AutoscalingPolicy]{
		Kind: workloadv1alpha1.GroupVersion.WithKind("AutoscalingPolicy").GroupKind(), Validate: ValidateAutoscalingPolicy,
	}).Complete()
}

// DefaultAutoscalingPolicy fills the behaviour a policy left out, which the
// schema cannot default because the parent objects are absent: a cautious
// scale-down (5 minute window), a quick stable scale-up, and panic mode off.
func DefaultAutoscalingPolicy(obj map[string]any) {
	behavior := defaulting.Map(obj, true, "spec", "behavior")
	fillStable(defaulting.Map(behavior, true, "scaleDown"), 0, "1m", "5m")
	fillStable(defaulting.Map(behavior, true, "scaleUp", "stablePolicy"), 4, "1m", "0s")
	panicPolicy := defaulting.Map(behavior, true, "scaleUp", "panicPolicy")
	defaulting.SetIfAbsent(panicPolicy, "percent", 0)
	defaulting.SetIfAbsent(panicPolicy, "period", "0s")
	defaulting.SetIfAbsent(panicPolicy, "panicThresholdPercent", 200)
	defaulting.SetIfAbsent(panicPolicy, "panicModeHold", "0s")
}

func fillStable(policy map[string]any, instances int, period, window string) {
	defaulting.SetIfAbsent(policy, "instances", instances)
	defaulting.SetIfAbsent(policy, "percent", 100)
	defaulting.SetIfAbsent(policy, "period", period)
	defaulting.SetIfAbsent(policy, "selectPolicy", string(workloadv1alpha1.SelectPolicyOr))
	defaulting.SetIfAbsent(policy, "stabilizationWindow", window)
}

// ValidateAutoscalingPolicy returns every problem of p, each naming its field.
func ValidateAutoscalingPolicy(p *workloadv1alpha1.AutoscalingPolicy) field.ErrorList {
	spec := &p.Spec
	path := field.NewPath("spec")
	errs := validateMetrics(spec.Metrics, path.Child("metrics"))
	errs = append(errs, validateBehavior(&spec.Behavior, path.Child("behavior"))...)
	topNames := metricNames(spec.Metrics)

	targets := 0
	if t := spec.HomogeneousTarget; t != nil {
		targets++
		tPath := path.Child("homogeneousTarget")
		if len(spec.Metrics) == 0 {
			errs = append(errs, field.Required(path.Child("metrics"), "a homogeneous target needs at least one metric"))
		}
		errs = append(errs, validateBounds(t.MinReplicas, t.MaxReplicas, tPath)...)
		errs = append(errs, validateTarget(&t.Target, topNames, tPath.Child("target"))...)
	}
	if t := spec.HeterogeneousTarget; t != nil {
		targets++
		tPath := path.Child("heterogeneousTarget")
		if len(spec.Metrics) == 0 {
			errs = append(errs, field.Required(path.Child("metrics"), "a heterogeneous target needs at least one metric"))
		}
		seen := sets.New[string]()
		for i := range t.Params {
			pPath := tPath.Child("params").Index(i)
			prm := &t.Params[i]
			errs = append(errs, validateBounds(prm.MinReplicas, prm.MaxReplicas, pPath)...)
			errs = append(errs, validateTarget(&prm.Target, topNames, pPath.Child("target"))...)
			if name := prm.Target.TargetRef.Name; seen.Has(name) {
				errs = append(errs, field.Duplicate(pPath.Child("target", "targetRef", "name"), name))
			} else {
				seen.Insert(name)
			}
		}
	}
	if t := spec.DisaggregatedTarget; t != nil {
		targets++
		errs = append(errs, validateDisaggregated(t, spec.Metrics, path.Child("disaggregatedTarget"))...)
	}
	if targets != 1 {
		errs = append(errs, field.Invalid(path, targets, "exactly one of homogeneousTarget, heterogeneousTarget or disaggregatedTarget must be set"))
	}
	return errs
}

func metricNames(ms []workloadv1alpha1.AutoscalingPolicyMetric) sets.Set[string] {
	s := sets.New[string]()
	for _, m := range ms {
		s.Insert(m.Name)
	}
	return s
}

func validateMetrics(ms []workloadv1alpha1.AutoscalingPolicyMetric, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, m := range ms {
		mPath := path.Index(i)
		if seen.Has(m.Name) {
			errs = append(errs, field.Duplicate(mPath.Child("name"), m.Name))
		}
		seen.Insert(m.Name)
		v := m.TargetValue.AsApproximateFloat64()
		if !(v > 0) || math.IsInf(v, 0) {
			errs = append(errs, field.Invalid(mPath.Child("targetValue"), m.TargetValue.String(), "must be a finite value above 0"))
		}
	}
	return errs
}

func validateBounds(min, max int32, path *field.Path) field.ErrorList {
	if min > max {
		return field.ErrorList{field.Invalid(path.Child("minReplicas"), min, fmt.Sprintf("must not exceed maxReplicas (%d)", max))}
	}
	return nil
}

func validateTargetRef(kind, name string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if kind != "" && kind != "ModelServing" {
		errs = append(errs, field.NotSupported(path.Child("kind"), kind, []string{"ModelServing"}))
	}
	if name == "" {
		errs = append(errs, field.Required(path.Child("name"), "the ModelServing to scale"))
	}
	return errs
}

func validateTarget(t *workloadv1alpha1.Target, metrics sets.Set[string], path *field.Path) field.ErrorList {
	errs := validateTargetRef(t.TargetRef.Kind, t.TargetRef.Name, path.Child("targetRef"))
	for key := range t.MetricSources {
		if !metrics.Has(key) {
			errs = append(errs, field.NotFound(path.Child("metricSources").Key(key), fmt.Sprintf("%s (no metric of that name in spec.metrics)", key)))
		}
	}
	return errs
}

func validateDisaggregated(t *workloadv1alpha1.DisaggregatedTarget, top []workloadv1alpha1.AutoscalingPolicyMetric, path *field.Path) field.ErrorList {
	errs := validateTargetRef(t.TargetRef.Kind, t.TargetRef.Name, path.Child("targetRef"))
	for name, r := range t.Roles {
		rPath := path.Child("roles").Key(name)
		for _, msg := range utilvalidation.IsDNS1035Label(name) {
			errs = append(errs, field.Invalid(rPath, name, "role name: "+msg))
		}
		errs = append(errs, validateBounds(r.MinReplicas, r.MaxReplicas, rPath)...)
		metrics := r.Metrics
		if len(metrics) == 0 {
			metrics = top
		} else {
			errs = append(errs, validateMetrics(r.Metrics, rPath.Child("metrics"))...)
		}
		fixed := r.MinReplicas == r.MaxReplicas && r.MinReplicas > 0
		if !fixed && len(metrics) == 0 {
			errs = append(errs, field.Required(rPath.Child("metrics"), "a role whose replicas may change needs metrics here or in spec.metrics"))
		}
		names := metricNames(metrics)
		for key := range r.MetricSources {
			if !names.Has(key) {
				errs = append(errs, field.NotFound(rPath.Child("metricSources").Key(key), fmt.Sprintf("%s (no metric of that name for this role)", key)))
			}
		}
		if !fixed {
			for _, m := range metrics {
				if _, ok := r.MetricSources[m.Name]; !ok {
					errs = append(errs, field.Required(rPath.Child("metricSources").Key(m.Name), "every metric of a scaled role needs a source"))
				}
			}
		}
	}
	if rc := t.RatioConstraint; rc != nil {
		errs = append(errs, validateRatio(rc, t.Roles, path.Child("ratioConstraint"))...)
	}
	return errs
}

func validateRatio(rc *workloadv1alpha1.RoleRatioConstraint, roles map[string]workloadv1alpha1.RoleScalingParam, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	num, okNum := roles[rc.NumeratorRole]
	den, okDen := roles[rc.DenominatorRole]
	if !okNum {
		errs = append(errs, field.NotFound(path.Child("numeratorRole"), rc.NumeratorRole))
	}
	if !okDen {
		errs = append(errs, field.NotFound(path.Child("denominatorRole"), rc.DenominatorRole))
	}
	if rc.NumeratorRole == rc.DenominatorRole {
		errs = append(errs, field.Invalid(path.Child("denominatorRole"), rc.DenominatorRole, "must differ from numeratorRole"))
	}
	lo, hi := rc.MinRatio.AsApproximateFloat64(), rc.MaxRatio.AsApproximateFloat64()
	if lo < 0 || math.IsInf(lo, 0) || math.IsNaN(lo) {
		errs = append(errs, field.Invalid(path.Child("minRatio"), rc.MinRatio.String(), "must be a finite value of at least 0"))
	}
	if !(hi > 0) || math.IsInf(hi, 0) {
		errs = append(errs, field.Invalid(path.Child("maxRatio"), rc.MaxRatio.String(), "must be a finite value above 0"))
	}
	if lo > hi {
		errs = append(errs, field.Invalid(path.Child("minRatio"), rc.MinRatio.String(), "must not exceed maxRatio"))
	}
	if len(errs) > 0 || !okNum || !okDen {
		return errs
	}
	// Some replica counts within both roles' bounds must satisfy the ratio.
	achievable := false
	for d := max(den.MinReplicas, 1); d <= den.MaxReplicas && !achievable; d++ {
		nLo, nHi := int32(math.Ceil(lo*float64(d)-1e-9)), int32(math.Floor(hi*float64(d)+1e-9))
		achievable = max(nLo, num.MinReplicas) <= min(nHi, num.MaxReplicas)
		if d > 10000 {
			break // bounds this wide always have a solution in practice
		}
	}
	if !achievable {
		errs = append(errs, field.Invalid(path, fmt.Sprintf("[%s, %s]", rc.MinRatio.String(), rc.MaxRatio.String()),
			fmt.Sprintf("no replica counts within the bounds of %q and %q satisfy the ratio", rc.NumeratorRole, rc.DenominatorRole)))
	}
	if (num.MinReplicas == 0) != (den.MinReplicas == 0) {
		errs = append(errs, field.Invalid(path, rc.NumeratorRole+"/"+rc.DenominatorRole,
			"both roles must be able to scale to zero together, or neither: set both minReplicas to 0 or both above 0"))
	}
	return errs
}

func validateBehavior(b *workloadv1alpha1.AutoscalingPolicyBehavior, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(d *metav1.Duration, p *field.Path) {
		if d != nil && (d.Duration < 0 || d.Duration > maxBehaviorDuration) {
			errs = append(errs, field.Invalid(p, d.Duration.String(), "must be between 0s and 30m"))
		}
	}
	for _, s := range []struct {
		p    *workloadv1alpha1.AutoscalingPolicyStablePolicy
		path *field.Path
	}{{&b.ScaleDown, path.Child("scaleDown")}, {&b.ScaleUp.StablePolicy, path.Child("scaleUp", "stablePolicy")}} {
		check(s.p.Period, s.path.Child("period"))
		check(s.p.StabilizationWindow, s.path.Child("stabilizationWindow"))
	}
	pp := &b.ScaleUp.PanicPolicy
	pPath := path.Child("scaleUp", "panicPolicy")
	check(&pp.Period, pPath.Child("period"))
	check(pp.PanicModeHold, pPath.Child("panicModeHold"))
	return errs
}
