package cli

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// kind is one Kthena kind as the CLI names it.
type kind struct {
	Kind     string
	Resource schema.GroupVersionResource
	// Aliases are the names accepted on the command line besides the plural
	// and the singular: upstream kthena CLI's names (model-servings, ms, ...)
	// and the kind itself. The CRDs carry no shortNames, as upstream's do not,
	// so kubectl's short forms come from here.
	Aliases []string
}

// kinds lists every Kthena kind; the order is the order of `kthena status`.
var kinds = []kind{
	{Kind: "ModelBooster", Resource: workloadv1alpha1.GroupVersion.WithResource("modelboosters"),
		Aliases: []string{"model-boosters", "model-booster", "mb"}},
	{Kind: "ModelServing", Resource: workloadv1alpha1.GroupVersion.WithResource("modelservings"),
		Aliases: []string{"model-servings", "model-serving", "ms"}},
	{Kind: "ModelServer", Resource: networkingv1alpha1.GroupVersion.WithResource("modelservers"),
		Aliases: []string{"model-servers", "model-server", "mserver"}},
	{Kind: "ModelRoute", Resource: networkingv1alpha1.GroupVersion.WithResource("modelroutes"),
		Aliases: []string{"model-routes", "model-route", "mroute"}},
	{Kind: "AutoscalingPolicy", Resource: workloadv1alpha1.GroupVersion.WithResource("autoscalingpolicies"),
		Aliases: []string{"autoscaling-policies", "autoscaling-policy", "asp"}},
	{Kind: "ExternalModelProvider", Resource: networkingv1alpha1.GroupVersion.WithResource("externalmodelproviders"),
		Aliases: []string{"external-model-providers", "external-model-provider", "emp"}},
}

// singular is the lower-case kind, as the CRDs' spec.names.singular.
func (k kind) singular() string { return strings.ToLower(k.Kind) }

// qualified is plural.group, the name kubectl and the REST mapper resolve
// without ambiguity.
func (k kind) qualified() string { return k.Resource.Resource + "." + k.Resource.Group }

// lookupKind resolves a name typed by the user (case-insensitive).
func lookupKind(name string) (kind, error) {
	n := strings.ToLower(name)
	for _, k := range kinds {
		if n == k.Resource.Resource || n == k.singular() || n == k.qualified() || n == k.singular()+"."+k.Resource.Group {
			return k, nil
		}
		for _, a := range k.Aliases {
			if n == a {
				return k, nil
			}
		}
	}
	return kind{}, fmt.Errorf("unknown kind %q: use one of %s", name, kindNames())
}

// kindNames lists the plural of every kind with its short name.
func kindNames() string {
	var names []string
	for _, k := range kinds {
		names = append(names, fmt.Sprintf("%s (%s)", k.Resource.Resource, k.Aliases[len(k.Aliases)-1]))
	}
	sort.Strings(names)
	return strings.Join(names, ", ") + ", templates"
}
