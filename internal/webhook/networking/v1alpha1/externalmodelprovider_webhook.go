package v1alpha1

import (
	"fmt"
	"net/http"
	"net/url"

	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/webhook/defaulting"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/mutate-networking-serving-volcano-sh-v1alpha1-externalmodelprovider,mutating=true,failurePolicy=fail,sideEffects=None,groups=networking.serving.volcano.sh,resources=externalmodelproviders,verbs=create;update,versions=v1alpha1,name=mexternalmodelprovider.networking.serving.volcano.sh,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-networking-serving-volcano-sh-v1alpha1-externalmodelprovider,mutating=false,failurePolicy=fail,sideEffects=None,groups=networking.serving.volcano.sh,resources=externalmodelproviders,verbs=create;update,versions=v1alpha1,name=vexternalmodelprovider.networking.serving.volcano.sh,admissionReviewVersions=v1

// SetupExternalModelProviderWebhook registers the defaulting and validating
// webhooks with the manager's webhook server.
func SetupExternalModelProviderWebhook(mgr ctrl.Manager) error {
	mgr.GetWebhookServer().Register("/mutate-networking-serving-volcano-sh-v1alpha1-externalmodelprovider",
		&webhook.Admission{Handler: defaulting.Handler(DefaultExternalModelProvider)})
	return ctrl.NewWebhookManagedBy(mgr).For(&networkingv1alpha1.ExternalModelProvider{}).WithValidator(&validation.Validator[*networkingv1alpha1.ExternalModelProvider]{
		Kind: networkingv1alpha1.GroupVersion.WithKind("ExternalModelProvider").GroupKind(), Validate: ValidateExternalModelProvider,
	}).Complete()
}

// DefaultExternalModelProvider picks the credential scheme each provider
// dialect expects: Bearer for OpenAI, x-api-key for Anthropic.
func DefaultExternalModelProvider(obj map[string]any) {
	spec := defaulting.Map(obj, true, "spec")
	defaulting.SetIfAbsent(spec, "providerType", string(networkingv1alpha1.OpenAI))
	auth := defaulting.Map(spec, false, "auth")
	scheme := networkingv1alpha1.AuthSchemeBearer
	if spec["providerType"] == string(networkingv1alpha1.Anthropic) {
		scheme = networkingv1alpha1.AuthSchemeAPIKey
	}
	defaulting.SetIfAbsent(auth, "scheme", string(scheme))
}

// reservedHeaders are set by the router or carry credentials; static headers must not override them.
var reservedHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "X-Api-Key": true, "Host": true,
	"Content-Length": true, "Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// ValidateExternalModelProvider returns every problem of p, each naming its field.
func ValidateExternalModelProvider(p *networkingv1alpha1.ExternalModelProvider) field.ErrorList {
	path := field.NewPath("spec")
	var errs field.ErrorList
	u, err := url.Parse(p.Spec.BaseURL)
	switch {
	case err != nil:
		errs = append(errs, field.Invalid(path.Child("baseURL"), p.Spec.BaseURL, "not a valid URL: "+err.Error()))
	case u.Scheme != "https" || u.Host == "":
		errs = append(errs, field.Invalid(path.Child("baseURL"), p.Spec.BaseURL, "must be an https URL with a host"))
	case u.User != nil:
		errs = append(errs, field.Invalid(path.Child("baseURL"), p.Spec.BaseURL, "must not contain credentials; use auth.secretRef"))
	case u.RawQuery != "" || u.ForceQuery:
		errs = append(errs, field.Invalid(path.Child("baseURL"), p.Spec.BaseURL, "must not contain a query"))
	case u.Fragment != "":
		errs = append(errs, field.Invalid(path.Child("baseURL"), p.Spec.BaseURL, "must not contain a fragment"))
	}
	for name := range p.Spec.Headers {
		hPath := path.Child("headers").Key(name)
		if !httpToken.MatchString(name) {
			errs = append(errs, field.Invalid(hPath, name, "must be a valid HTTP header name"))
			continue
		}
		if reservedHeaders[http.CanonicalHeaderKey(name)] {
			errs = append(errs, field.Forbidden(hPath, fmt.Sprintf("header %q is reserved: it carries credentials or is set by the router", name)))
		}
	}
	if a := p.Spec.Auth; a != nil {
		if a.SecretRef.Name == "" {
			errs = append(errs, field.Required(path.Child("auth", "secretRef", "name"), "the Secret holding the credential"))
		}
		if a.SecretRef.Key == "" {
			errs = append(errs, field.Required(path.Child("auth", "secretRef", "key"), "the key of the credential in the Secret"))
		}
	}
	return errs
}
