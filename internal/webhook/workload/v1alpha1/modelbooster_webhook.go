package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/modelbooster"
	"github.com/kthena/kthena/internal/webhook/defaulting"
	"github.com/kthena/kthena/internal/webhook/validation"
)

// +kubebuilder:webhook:path=/mutate-workload-serving-volcano-sh-v1alpha1-modelbooster,mutating=true,failurePolicy=fail,sideEffects=None,groups=workload.serving.volcano.sh,resources=modelboosters,verbs=create;update,versions=v1alpha1,name=mmodelbooster.workload.serving.volcano.sh,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-workload-serving-volcano-sh-v1alpha1-modelbooster,mutating=false,failurePolicy=fail,sideEffects=None,groups=workload.serving.volcano.sh,resources=modelboosters,verbs=create;update,versions=v1alpha1,name=vmodelbooster.workload.serving.volcano.sh,admissionReviewVersions=v1

// SetupModelBoosterWebhook registers the defaulting and validating webhooks
// with the manager's webhook server.
func SetupModelBoosterWebhook(mgr ctrl.Manager) error {
	mgr.GetWebhookServer().Register("/mutate-workload-serving-volcano-sh-v1alpha1-modelbooster",
		&webhook.Admission{Handler: defaulting.Handler(DefaultModelBooster)})
	return ctrl.NewWebhookManagedBy(mgr).For(&workloadv1alpha1.ModelBooster{}).WithValidator(&validation.Validator[*workloadv1alpha1.ModelBooster]{
		Kind: workloadv1alpha1.GroupVersion.WithKind("ModelBooster").GroupKind(), Validate: ValidateModelBooster,
	}).Complete()
}

// DefaultModelBooster gives every worker at least one pod; zero pods would
// mean a role replica without even an entry pod.
func DefaultModelBooster(obj map[string]any) {
	workers, _ := defaulting.Map(obj, false, "spec", "backend")["workers"].([]any)
	for _, w := range workers {
		if wk, ok := w.(map[string]any); ok {
			if pods, _ := wk["pods"].(float64); pods == 0 {
				wk["pods"] = 1
			}
		}
	}
}

// ValidateModelBooster returns every problem of mb, each naming its field.
func ValidateModelBooster(mb *workloadv1alpha1.ModelBooster) field.ErrorList {
	b := &mb.Spec.Backend
	path := field.NewPath("spec", "backend")
	var errs field.ErrorList

	counts := map[workloadv1alpha1.ModelWorkerType]int{}
	for _, wk := range b.Workers {
		counts[wk.Type]++
	}
	switch b.Type {
	case workloadv1alpha1.ModelBackendTypeVLLM, workloadv1alpha1.ModelBackendTypeSGLang, workloadv1alpha1.ModelBackendTypeMindIE:
		if len(b.Workers) != 1 || counts[workloadv1alpha1.ModelWorkerTypeServer] != 1 {
			errs = append(errs, field.Invalid(path.Child("workers"), len(b.Workers), fmt.Sprintf("backend type %s needs exactly one worker, of type server", b.Type)))
		}
	case workloadv1alpha1.ModelBackendTypeVLLMDisaggregated:
		if counts[workloadv1alpha1.ModelWorkerTypePrefill] != 1 || counts[workloadv1alpha1.ModelWorkerTypeDecode] != 1 || len(b.Workers) != 2 {
			errs = append(errs, field.Invalid(path.Child("workers"), len(b.Workers), "backend type vLLMDisaggregated needs exactly one prefill worker and one decode worker"))
		}
	case workloadv1alpha1.ModelBackendTypeMindIEDisaggregated:
		for i, wk := range b.Workers {
			if wk.Type == workloadv1alpha1.ModelWorkerTypeServer {
				errs = append(errs, field.NotSupported(path.Child("workers").Index(i).Child("type"), wk.Type,
					[]string{"prefill", "decode", "controller", "coordinator"}))
			}
		}
	}

	port := ""
	connectors := map[workloadv1alpha1.ModelWorkerType]string{}
	for i := range b.Workers {
		wk := &b.Workers[i]
		wPath := path.Child("workers").Index(i)
		errs = append(errs, validation.Image(wk.Image, wPath.Child("image"))...)
		if wk.Pods < 1 {
			errs = append(errs, field.Invalid(wPath.Child("pods"), wk.Pods, "must be at least 1 (the entry pod)"))
		}
		cfg, cfgErrs := workerConfig(wk, wPath.Child("config"))
		errs = append(errs, cfgErrs...)
		if p, ok := cfg["port"]; ok {
			ps := strings.Trim(string(p), `"`)
			n, err := strconv.Atoi(ps)
			switch {
			case err != nil || n < 1 || n > 65535:
				errs = append(errs, field.Invalid(wPath.Child("config", "port"), ps, "must be a port number between 1 and 65535"))
			case port != "" && port != ps:
				errs = append(errs, field.Invalid(wPath.Child("config", "port"), ps, fmt.Sprintf("must equal the other workers' port %s: the ModelServer has one port", port)))
			default:
				port = ps
			}
		}
		if raw, ok := cfg["kv-transfer-config"]; ok {
			kv, kvErrs := kvTransferConfig(raw, wk.Type, wPath.Child("config", "kv-transfer-config"))
			errs = append(errs, kvErrs...)
			connectors[wk.Type] = kv
		}
	}
	if p, d := connectors[workloadv1alpha1.ModelWorkerTypePrefill], connectors[workloadv1alpha1.ModelWorkerTypeDecode]; p != "" && d != "" && p != d {
		errs = append(errs, field.Invalid(path.Child("workers"), d, fmt.Sprintf("prefill and decode must use the same kv_connector (prefill %q, decode %q)", p, d)))
	}
	errs = append(errs, validateCache(b, path)...)
	if len(errs) == 0 {
		errs = append(errs, validateGenerated(mb)...)
	}
	return errs
}

// validateGenerated refuses a booster the controller could only fail on:
// LoRA adapter lists it cannot parse or that overflow the route, and names
// that make the generated ModelServing's pod names invalid.
func validateGenerated(mb *workloadv1alpha1.ModelBooster) field.ErrorList {
	ms, ferr := modelbooster.GenerateModelServing(mb)
	if ferr != nil {
		return field.ErrorList{ferr}
	}
	var errs field.ErrorList
	for _, e := range ValidateModelServing(ms, nil) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), mb.Name,
			fmt.Sprintf("the generated ModelServing %s would be invalid: %s", ms.Name, e.Error())))
	}
	return errs
}

// workerConfig decodes a worker's engine arguments, which must be a JSON object.
func workerConfig(wk *workloadv1alpha1.ModelWorker, path *field.Path) (map[string]json.RawMessage, field.ErrorList) {
	if len(wk.Config.Raw) == 0 {
		return nil, nil
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(wk.Config.Raw, &cfg); err != nil {
		return nil, field.ErrorList{field.Invalid(path, string(wk.Config.Raw), "must be a JSON object of engine arguments")}
	}
	return cfg, nil
}

// kvTransferConfig checks vLLM's kv-transfer-config and returns its connector.
func kvTransferConfig(raw json.RawMessage, typ workloadv1alpha1.ModelWorkerType, path *field.Path) (string, field.ErrorList) {
	var kv struct {
		Connector string `json:"kv_connector"`
		Role      string `json:"kv_role"`
	}
	// The value may be an object or a JSON string holding one.
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	if err := json.Unmarshal(raw, &kv); err != nil {
		return "", field.ErrorList{field.Invalid(path, string(raw), "must be a JSON object with kv_connector and kv_role")}
	}
	allowed := map[workloadv1alpha1.ModelWorkerType][]string{
		workloadv1alpha1.ModelWorkerTypePrefill: {"kv_producer", "kv_both"},
		workloadv1alpha1.ModelWorkerTypeDecode:  {"kv_consumer", "kv_both"},
	}[typ]
	if allowed != nil && kv.Role != "" && kv.Role != allowed[0] && kv.Role != allowed[1] {
		return kv.Connector, field.ErrorList{field.NotSupported(path.Child("kv_role"), kv.Role, allowed)}
	}
	return kv.Connector, nil
}

// validateCache checks that a model stored on a PVC is cached on that same claim.
func validateCache(b *workloadv1alpha1.ModelBackend, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, u := range []struct {
		uri  string
		name string
	}{{b.ModelURI, "modelURI"}, {b.CacheURI, "cacheURI"}} {
		if strings.Contains(u.uri, "..") {
			errs = append(errs, field.Invalid(path.Child(u.name), u.uri, "must not contain '..'"))
		}
	}
	claim, ok := strings.CutPrefix(b.ModelURI, "pvc://")
	if !ok {
		return errs
	}
	claim, _, _ = strings.Cut(claim, "/")
	cacheClaim, isPVC := strings.CutPrefix(b.CacheURI, "pvc://")
	cacheClaim, _, _ = strings.Cut(cacheClaim, "/")
	if !isPVC || cacheClaim != claim {
		errs = append(errs, field.Invalid(path.Child("cacheURI"), b.CacheURI, fmt.Sprintf("a pvc:// modelURI must be cached on the same claim: use pvc://%s", claim)))
	}
	return errs
}
