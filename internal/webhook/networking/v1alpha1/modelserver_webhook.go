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
	}
	return errs
}
