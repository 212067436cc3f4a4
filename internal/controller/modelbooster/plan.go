package modelbooster

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// plan is what every generated object is built from: the booster with its
// engine configs decoded and the values the objects share worked out once.
type plan struct {
	mb            *workloadv1alpha1.ModelBooster
	engine        networkingv1alpha1.InferenceEngine
	disaggregated bool
	port          int32
	servedName    string
	kvConnector   networkingv1alpha1.KVConnectorType
	loras         []string
	workers       []workerPlan
	source        modelSource
	scaling       *scaling
}

type workerPlan struct {
	wk   *workloadv1alpha1.ModelWorker
	role string
	cfg  *EngineConfig
}

// newPlan checks what the controller needs beyond admission (which runs the
// same checks; a booster stored before them still fails here, by field).
func newPlan(mb *workloadv1alpha1.ModelBooster, o Options) (*plan, error) {
	b := &mb.Spec.Backend
	path := field.NewPath("spec", "backend")
	p := &plan{mb: mb, servedName: modelName(mb), source: newModelSource(b, o.DownloaderImage)}
	switch b.Type {
	case workloadv1alpha1.ModelBackendTypeVLLM:
		p.engine = networkingv1alpha1.VLLM
	case workloadv1alpha1.ModelBackendTypeVLLMDisaggregated:
		p.engine, p.disaggregated = networkingv1alpha1.VLLM, true
	case workloadv1alpha1.ModelBackendTypeSGLang:
		p.engine = networkingv1alpha1.SGLang
	default:
		return nil, field.NotSupported(path.Child("type"), b.Type, []string{
			string(workloadv1alpha1.ModelBackendTypeVLLM), string(workloadv1alpha1.ModelBackendTypeVLLMDisaggregated), string(workloadv1alpha1.ModelBackendTypeSGLang)})
	}
	roles := map[string]bool{}
	connectors := map[string]string{}
	for i := range b.Workers {
		wk := &b.Workers[i]
		wPath := path.Child("workers").Index(i)
		role := string(wk.Type)
		if role == "" {
			role = string(workloadv1alpha1.ModelWorkerTypeServer)
		}
		want := []string{string(workloadv1alpha1.ModelWorkerTypeServer)}
		if p.disaggregated {
			want = []string{string(workloadv1alpha1.ModelWorkerTypePrefill), string(workloadv1alpha1.ModelWorkerTypeDecode)}
		}
		if !contains(want, role) {
			return nil, field.NotSupported(wPath.Child("type"), role, want)
		}
		if roles[role] {
			return nil, field.Duplicate(wPath.Child("type"), role)
		}
		roles[role] = true
		if wk.Image == "" {
			return nil, field.Required(wPath.Child("image"), "the engine image")
		}
		cfg, err := ParseConfig(wk)
		if err != nil {
			return nil, field.Invalid(wPath.Child("config"), string(wk.Config.Raw), err.Error())
		}
		port, err := cfg.Port()
		if err != nil {
			return nil, field.Invalid(wPath.Child("config", "port"), cfg.String("port"), err.Error())
		}
		if port != 0 && p.port != 0 && port != p.port {
			return nil, field.Invalid(wPath.Child("config", "port"), port, fmt.Sprintf("must equal the other workers' port %d: the ModelServer has one port", p.port))
		}
		if port != 0 {
			p.port = port
		}
		if n := cfg.String("served-model-name"); n != "" && role != string(workloadv1alpha1.ModelWorkerTypePrefill) {
			p.servedName = n // the decode (or only) engine's name is what the router asks for
		}
		if p.disaggregated {
			kv, err := cfg.JSONObject("kv-transfer-config")
			if err != nil {
				return nil, field.Invalid(wPath.Child("config", "kv-transfer-config"), cfg.String("kv-transfer-config"), err.Error())
			}
			c, _ := kv["kv_connector"].(string)
			connectors[role] = c
		}
		loras, err := LoRAAdapters(b.Type, cfg)
		if err != nil {
			return nil, field.Invalid(wPath.Child("config", loraKey(b.Type)), cfg.String(loraKey(b.Type)), err.Error())
		}
		for _, n := range loras {
			if !contains(p.loras, n) {
				p.loras = append(p.loras, n)
			}
		}
		p.workers = append(p.workers, workerPlan{wk: wk, role: role, cfg: cfg})
	}
	if p.disaggregated {
		if !roles[string(workloadv1alpha1.ModelWorkerTypePrefill)] || !roles[string(workloadv1alpha1.ModelWorkerTypeDecode)] {
			return nil, field.Invalid(path.Child("workers"), len(b.Workers), "a vLLMDisaggregated backend needs one prefill and one decode worker")
		}
		pc, dc := connectors[string(workloadv1alpha1.ModelWorkerTypePrefill)], connectors[string(workloadv1alpha1.ModelWorkerTypeDecode)]
		if pc != dc {
			return nil, field.Invalid(path.Child("workers"), dc, fmt.Sprintf("prefill and decode must use the same kv_connector (prefill %q, decode %q)", pc, dc))
		}
		p.kvConnector = connectorType(pc)
	} else if len(p.workers) != 1 {
		return nil, field.Invalid(path.Child("workers"), len(b.Workers), fmt.Sprintf("backend type %s needs exactly one worker, of type server", b.Type))
	}
	if p.port == 0 {
		p.port = DefaultPort
	}
	sc, err := parseScaling(mb)
	if err != nil {
		return nil, err
	}
	p.scaling = sc
	if len(p.loras) > MaxLoRAAdapters {
		return nil, field.TooMany(path.Child("workers").Key("*").Child("config", loraKey(b.Type)), len(p.loras), MaxLoRAAdapters)
	}
	return p, nil
}

// connectorType maps vLLM's kv_connector class to the router's connector;
// no connector (or one the router has no protocol for) is plain http, where
// the router sends the prompt to prefill and then to decode.
func connectorType(c string) networkingv1alpha1.KVConnectorType {
	switch c {
	case "NixlConnector":
		return networkingv1alpha1.ConnectorTypeNIXL
	case "LMCacheConnectorV1", "LMCacheConnector":
		return networkingv1alpha1.ConnectorTypeLMCache
	case "MooncakeConnector", "MooncakeConnectorV1", "MooncakeStoreConnector":
		return networkingv1alpha1.ConnectorTypeMooncake
	default:
		return networkingv1alpha1.ConnectorTypeHTTP
	}
}
