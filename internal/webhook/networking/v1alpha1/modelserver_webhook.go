package v1alpha1

import (
	"k8s.io/apimachinery/pkg/labels"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/validate-networking-serving-volcano-sh-v1alpha1-modelserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=networking.serving.volcano.sh,resources=modelservers,verbs=create;update,versions=v1alpha1,name=vmodelserver.networking.serving.volcano.sh,admissionReviewVersions=v1

// SetupModelServerWebhook registers the validator with the manager's webhook server.
func SetupModelServerWebhook(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr).For(&networkingv1alpha1.ModelServer{}).WithValidator(&validation.Validator[*networkingv1alpha1.ModelServer]{
		Kind: networkingv1alpha1.GroupVersion.WithKind("ModelServer").GroupKind(), Validate: ValidateModelServer,
	}).Complete()
}

// ValidateModelServer returns every problem of s, each naming its field.
func ValidateModelServer(s *networkingv1alpha1.ModelServer) field.ErrorList {
	path := field.NewPath("spec", "workloadSelector")
	ws := s.Spec.WorkloadSelector
	if ws == nil {
		return field.ErrorList{field.Required(path, "a workload selector is required")}
	}
	var errs field.ErrorList
	if len(ws.MatchLabels) == 0 {
		errs = append(errs, field.Required(path.Child("matchLabels"), "at least one label is required, or every pod in the namespace would be selected"))
	}
	errs = append(errs, validation.Labels(ws.MatchLabels, path.Child("matchLabels"))...)
	if pd := ws.PDGroup; pd != nil {
		pdPath := path.Child("pdGroup")
		if pd.GroupKey == "" {
			errs = append(errs, field.Required(pdPath.Child("groupKey"), "the label key that pairs prefill and decode pods is required"))
		}
		for _, msg := range utilvalidation.IsQualifiedName(pd.GroupKey) {
			if pd.GroupKey != "" {
				errs = append(errs, field.Invalid(pdPath.Child("groupKey"), pd.GroupKey, msg))
			}
		}
		if len(pd.PrefillLabels) == 0 {
			errs = append(errs, field.Required(pdPath.Child("prefillLabels"), "labels that select the prefill pods are required"))
		}
		if len(pd.DecodeLabels) == 0 {
			errs = append(errs, field.Required(pdPath.Child("decodeLabels"), "labels that select the decode pods are required"))
		}
		errs = append(errs, validation.Labels(pd.PrefillLabels, pdPath.Child("prefillLabels"))...)
		errs = append(errs, validation.Labels(pd.DecodeLabels, pdPath.Child("decodeLabels"))...)
		if len(pd.PrefillLabels) > 0 && len(pd.DecodeLabels) > 0 &&
			labels.SelectorFromSet(pd.PrefillLabels).Matches(labels.Set(pd.DecodeLabels)) {
			errs = append(errs, field.Invalid(pdPath.Child("decodeLabels"), pd.DecodeLabels, "a decode pod would also match prefillLabels; the two sets must tell the pods apart"))
		}
	}
	if tp := s.Spec.TrafficPolicy; tp != nil {
		tpPath := field.NewPath("spec", "trafficPolicy")
		if tp.Timeout != nil && tp.Timeout.Duration <= 0 {
			errs = append(errs, field.Invalid(tpPath.Child("timeout"), tp.Timeout.Duration.String(), "must be above 0; leave it unset for no timeout"))
		}
		if tp.Retry != nil {
			if tp.Retry.Attempts < 0 {
				errs = append(errs, field.Invalid(tpPath.Child("retry", "attempts"), tp.Retry.Attempts, "must be at least 0"))
			}
			if tp.Retry.RetryInterval != nil && tp.Retry.RetryInterval.Duration < 0 {
				errs = append(errs, field.Invalid(tpPath.Child("retry", "retryInterval"), tp.Retry.RetryInterval.Duration.String(), "must not be negative"))
			}
		}
		errs = append(errs, validateSessionSticky(tp.SessionSticky, tpPath.Child("sessionSticky"))...)
	}
	return errs
}

// maxSessionKeySources is the schema's bound on sessionSticky.sources.
const maxSessionKeySources = 16

// validateSessionSticky checks what the schema cannot: that each source can
// ever be present in a request. It repeats the schema's bounds too, for
// objects that do not pass through the API server (the file provider).
func validateSessionSticky(ss *networkingv1alpha1.SessionSticky, path *field.Path) field.ErrorList {
	if ss == nil {
		return nil
	}
	var errs field.ErrorList
	if ss.SessionAffinitySeconds != nil && *ss.SessionAffinitySeconds <= 0 {
		errs = append(errs, field.Invalid(path.Child("sessionAffinitySeconds"), *ss.SessionAffinitySeconds, "must be at least 1; leave it unset for the default"))
	}
	srcPath := path.Child("sources")
	switch {
	case len(ss.Sources) == 0:
		errs = append(errs, field.Required(srcPath, "at least one source of the session key is required; remove sessionSticky to turn affinity off"))
	case len(ss.Sources) > maxSessionKeySources:
		errs = append(errs, field.TooMany(srcPath, len(ss.Sources), maxSessionKeySources))
	}
	for i, src := range ss.Sources {
		namePath := srcPath.Index(i).Child("name")
		if src.Name == "" {
			errs = append(errs, field.Required(namePath, "the "+string(src.Type)+" name is required"))
			continue
		}
		switch src.Type {
		case networkingv1alpha1.SessionKeySourceHeader:
			if !httpToken.MatchString(src.Name) {
				errs = append(errs, field.Invalid(namePath, src.Name, "must be a valid HTTP header name"))
			}
		case networkingv1alpha1.SessionKeySourceCookie:
			// RFC 6265: a cookie name is a token, like a header name.
			if !httpToken.MatchString(src.Name) {
				errs = append(errs, field.Invalid(namePath, src.Name, "must be a valid cookie name (an HTTP token)"))
			}
		case networkingv1alpha1.SessionKeySourceQuery, networkingv1alpha1.SessionKeySourceJWTClaim:
			// Any non-empty name can appear in a query string or a claim set.
		default:
			errs = append(errs, field.NotSupported(srcPath.Index(i).Child("type"), src.Type, []networkingv1alpha1.SessionKeySourceType{
				networkingv1alpha1.SessionKeySourceHeader, networkingv1alpha1.SessionKeySourceQuery,
				networkingv1alpha1.SessionKeySourceCookie, networkingv1alpha1.SessionKeySourceJWTClaim,
			}))
		}
	}
	return errs
}
