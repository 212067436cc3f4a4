package v1alpha1

import (
	"net"
	"regexp"

	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/validate-networking-serving-volcano-sh-v1alpha1-modelroute,mutating=false,failurePolicy=fail,sideEffects=None,groups=networking.serving.volcano.sh,resources=modelroutes,verbs=create;update,versions=v1alpha1,name=vmodelroute.networking.serving.volcano.sh,admissionReviewVersions=v1

// SetupModelRouteWebhook registers the validator with the manager's webhook server.
func SetupModelRouteWebhook(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr).For(&networkingv1alpha1.ModelRoute{}).WithValidator(&validation.Validator[*networkingv1alpha1.ModelRoute]{
		Kind: networkingv1alpha1.GroupVersion.WithKind("ModelRoute").GroupKind(), Validate: ValidateModelRoute,
	}).Complete()
}

// ValidateModelRoute returns every problem of r, each naming its field. The
// router and the standalone file provider use it too.
func ValidateModelRoute(r *networkingv1alpha1.ModelRoute) field.ErrorList {
	spec := &r.Spec
	path := field.NewPath("spec")
	var errs field.ErrorList
	if spec.ModelName == "" && len(spec.LoraAdapters) == 0 {
		errs = append(errs, field.Required(path.Child("modelName"), "modelName and loraAdapters cannot both be empty"))
	}
	seen := sets.New[string]()
	for i, name := range spec.LoraAdapters {
		p := path.Child("loraAdapters").Index(i)
		switch {
		case name == "":
			errs = append(errs, field.Required(p, "a LoRA adapter name must not be empty"))
		case seen.Has(name):
			errs = append(errs, field.Duplicate(p, name))
		}
		seen.Insert(name)
	}
	if len(spec.Rules) == 0 {
		errs = append(errs, field.Required(path.Child("rules"), "at least one rule is required"))
	}
	for i, rule := range spec.Rules {
		rPath := path.Child("rules").Index(i)
		if rule == nil {
			errs = append(errs, field.Required(rPath, "a rule must not be null"))
			continue
		}
		errs = append(errs, validateMatch(rule.ModelMatch, rPath.Child("modelMatch"))...)
		if len(rule.TargetModels) == 0 {
			errs = append(errs, field.Required(rPath.Child("targetModels"), "at least one target model is required"))
		}
		var total uint64
		for j, t := range rule.TargetModels {
			tPath := rPath.Child("targetModels").Index(j)
			if t == nil {
				errs = append(errs, field.Required(tPath, "a target model must not be null"))
				continue
			}
			if (t.ModelServerName == "") == (t.ExternalModelProviderName == "") {
				errs = append(errs, field.Invalid(tPath, t.ModelServerName+t.ExternalModelProviderName, "exactly one of modelServerName or externalModelProviderName must be set"))
			}
			if len(spec.LoraAdapters) > 0 && t.ExternalModelProviderName != "" {
				errs = append(errs, field.Invalid(tPath.Child("externalModelProviderName"), t.ExternalModelProviderName, "a route with loraAdapters can only target ModelServers"))
			}
			for _, name := range []struct{ v, f string }{{t.ModelServerName, "modelServerName"}, {t.ExternalModelProviderName, "externalModelProviderName"}} {
				if name.v == "" {
					continue
				}
				for _, msg := range utilvalidation.IsDNS1123Subdomain(name.v) {
					errs = append(errs, field.Invalid(tPath.Child(name.f), name.v, msg))
				}
			}
			if t.Weight == nil {
				total += 100 // the schema default
			} else {
				total += uint64(*t.Weight)
			}
		}
		if len(rule.TargetModels) > 0 && total == 0 {
			errs = append(errs, field.Invalid(rPath.Child("targetModels"), 0, "the weights of the target models sum to 0, so no request could be routed"))
		}
	}
	if rl := spec.RateLimit; rl != nil && rl.Global != nil && rl.Global.Redis != nil {
		addr := rl.Global.Redis.Address
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			errs = append(errs, field.Invalid(path.Child("rateLimit", "global", "redis", "address"), addr, "must be host:port"))
		}
	}
	return errs
}

func validateMatch(m *networkingv1alpha1.ModelMatch, path *field.Path) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	for name, sm := range m.Headers {
		hPath := path.Child("headers").Key(name)
		if !httpToken.MatchString(name) {
			errs = append(errs, field.Invalid(hPath, name, "must be a valid HTTP header name"))
		}
		errs = append(errs, validateStringMatch(sm, hPath)...)
	}
	errs = append(errs, validateStringMatch(m.Uri, path.Child("uri"))...)
	return errs
}

// httpToken is RFC 9110's token, the syntax of a header name.
var httpToken = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func validateStringMatch(sm *networkingv1alpha1.StringMatch, path *field.Path) field.ErrorList {
	if sm == nil {
		return nil
	}
	set := 0
	for _, v := range []*string{sm.Exact, sm.Prefix, sm.Regex} {
		if v != nil {
			set++
		}
	}
	if set != 1 {
		return field.ErrorList{field.Invalid(path, set, "exactly one of exact, prefix or regex must be set")}
	}
	if sm.Regex != nil {
		if _, err := regexp.Compile(*sm.Regex); err != nil {
			return field.ErrorList{field.Invalid(path.Child("regex"), *sm.Regex, "not a valid RE2 regular expression: "+err.Error())}
		}
	}
	return nil
}
