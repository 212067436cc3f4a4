package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/test/wrappers"
)

func TestValidateMaxSurge(t *testing.T) {
	i := func(v int) *intstr.IntOrString { x := intstr.FromInt(v); return &x }
	s := func(v string) *intstr.IntOrString { x := intstr.FromString(v); return &x }
	cases := []struct {
		name               string
		maxUnavailable     *intstr.IntOrString
		maxSurge           *intstr.IntOrString
		wantField, wantMsg string // empty: valid
	}{
		{"surge with no unavailability", i(0), i(1), "", ""},
		{"percentage surge", i(0), s("25%"), "", ""},
		{"surge and unavailability", i(1), s("100%"), "", ""},
		{"unset surge", i(1), nil, "", ""},
		{"both 0", i(0), i(0), "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable", "must not be 0 while maxSurge is 0"},
		{"both 0%", s("0%"), s("0%"), "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable", "must not be 0 while maxSurge is 0"},
		{"unavailability 0 without surge", i(0), nil, "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable", "must not be 0 while maxSurge is 0"},
		{"negative surge", i(1), i(-1), "spec.rolloutStrategy.rollingUpdateConfiguration.maxSurge", "greater than or equal to 0"},
		{"bad percentage", i(1), s("25"), "spec.rolloutStrategy.rollingUpdateConfiguration.maxSurge", "percentage"},
		{"percentage above 100", i(1), s("150%"), "spec.rolloutStrategy.rollingUpdateConfiguration.maxSurge", "between 0% and 100%"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := wrappers.MakeModelServing("ns", "m").Replicas(4).GroupRollingUpdate(c.maxUnavailable, nil).Role(wrappers.MakeRole("r").Obj()).Obj()
			ms.Spec.RolloutStrategy.RollingUpdateConfiguration.MaxSurge = c.maxSurge
			errs := ValidateModelServing(ms, nil)
			if c.wantField == "" {
				if len(errs) > 0 {
					t.Fatalf("rejected: %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != c.wantField || !strings.Contains(errs[0].Error(), c.wantMsg) {
				t.Fatalf("errors %v, want one on %s containing %q", errs, c.wantField, c.wantMsg)
			}
		})
	}
}

func TestValidateMaxSurgeForbiddenWithRoleRollingUpdate(t *testing.T) {
	one := intstr.FromInt(1)
	ms := wrappers.MakeModelServing("ns", "m").RoleRollingUpdate().Role(wrappers.MakeRole("r").Obj()).Obj()
	ms.Spec.RolloutStrategy.RollingUpdateConfiguration = &workloadv1alpha1.RollingUpdateConfiguration{MaxSurge: &one}
	errs := ValidateModelServing(ms, nil)
	if len(errs) != 1 || errs[0].Field != "spec.rolloutStrategy.rollingUpdateConfiguration" {
		t.Fatalf("errors %v, want rollingUpdateConfiguration forbidden", errs)
	}
}

func TestValidateEvictionStrategy(t *testing.T) {
	two, half, bad := intstr.FromInt(2), intstr.FromString("50%"), intstr.FromString("half")
	cases := []struct {
		name      string
		es        workloadv1alpha1.EvictionStrategySpec
		wantField string // empty: valid
	}{
		{"groups", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &two}, ""},
		{"roles", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelRole, RoleMinAvailable: map[string]intstr.IntOrString{"r": half}}, ""},
		{"unknown role", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelRole, RoleMinAvailable: map[string]intstr.IntOrString{"x": half}}, "spec.rolloutStrategy.evictionStrategy.roleMinAvailable[x]"},
		{"minAvailable with Role", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelRole, MinAvailable: &two}, "spec.rolloutStrategy.evictionStrategy.minAvailable"},
		{"roleMinAvailable with ServingGroup", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, RoleMinAvailable: map[string]intstr.IntOrString{"r": half}}, "spec.rolloutStrategy.evictionStrategy.roleMinAvailable"},
		{"bad percentage", workloadv1alpha1.EvictionStrategySpec{ProtectionLevel: workloadv1alpha1.ProtectionLevelServingGroup, MinAvailable: &bad}, "spec.rolloutStrategy.evictionStrategy.minAvailable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := wrappers.MakeModelServing("ns", "m").Replicas(4).Role(wrappers.MakeRole("r").Obj()).Obj()
			es := c.es
			ms.Spec.RolloutStrategy = &workloadv1alpha1.RolloutStrategy{Type: workloadv1alpha1.ServingGroupRollingUpdate, EvictionStrategy: &es}
			errs := ValidateModelServing(ms, nil)
			if c.wantField == "" {
				if len(errs) > 0 {
					t.Fatalf("rejected: %v", errs)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != c.wantField {
				t.Fatalf("errors %v, want one on %s", errs, c.wantField)
			}
		})
	}
}
