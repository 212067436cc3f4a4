package modelbooster

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// buildModelServer generates the ModelServer that puts the ModelServing's
// pods behind the router. The selector is the ModelServing controller's own
// pod label, so it matches exactly the pods of this ModelServing.
func buildModelServer(p *plan) *networkingv1alpha1.ModelServer {
	mb := p.mb
	name := servingName(mb)
	s := &networkingv1alpha1.ModelServer{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1alpha1.GroupVersion.String(), Kind: "ModelServer"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: mb.Namespace, Labels: generatedLabels(mb)},
		Spec: networkingv1alpha1.ModelServerSpec{
			Model:            ptrTo(p.servedName),
			InferenceEngine:  p.engine,
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{workloadv1alpha1.ModelServingNameLabelKey: name}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: p.port, Protocol: "http"},
		},
	}
	if p.disaggregated {
		s.Spec.WorkloadSelector.PDGroup = &networkingv1alpha1.PDGroup{
			GroupKey:      workloadv1alpha1.GroupNameLabelKey,
			PrefillLabels: map[string]string{workloadv1alpha1.RoleLabelKey: string(workloadv1alpha1.ModelWorkerTypePrefill)},
			DecodeLabels:  map[string]string{workloadv1alpha1.RoleLabelKey: string(workloadv1alpha1.ModelWorkerTypeDecode)},
		}
		s.Spec.KVConnector = &networkingv1alpha1.KVConnectorSpec{Type: p.kvConnector}
	}
	return s
}

// buildModelRoute generates the route from the model name (and the LoRA
// adapters the engines load) to the ModelServer.
func buildModelRoute(p *plan) *networkingv1alpha1.ModelRoute {
	mb := p.mb
	return &networkingv1alpha1.ModelRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1alpha1.GroupVersion.String(), Kind: "ModelRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: routeName(mb), Namespace: mb.Namespace, Labels: generatedLabels(mb)},
		Spec: networkingv1alpha1.ModelRouteSpec{
			ModelName:    modelName(mb),
			LoraAdapters: p.loras,
			Rules: []*networkingv1alpha1.Rule{{
				Name:         "default",
				ModelMatch:   mb.Spec.ModelMatch,
				TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: servingName(mb)}},
			}},
		},
	}
}
