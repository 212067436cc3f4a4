package autoscaling

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// roleUnit is one role of a disaggregated target during a cycle.
type roleUnit struct {
	name    string
	index   int // in spec.template.roles
	current int32
	hasRepl bool
	b       bounds
	fixed   bool
	u       *unit
	ev      evaluation
	d       decision
	reason  string
}

func (c *cycle) disaggregated(ctx context.Context) error {
	t := c.pol.Spec.DisaggregatedTarget
	name := t.TargetRef.Name
	ms, err := c.getTarget(ctx, name)
	if ms == nil {
		return err
	}
	names := make([]string, 0, len(t.Roles))
	for r := range t.Roles {
		names = append(names, r)
	}
	sort.Strings(names)
	groups := int32(1)
	if ms.Spec.Replicas != nil {
		groups = max(*ms.Spec.Replicas, 1)
	}
	var roles []*roleUnit
	for _, rn := range names {
		idx := -1
		for i := range ms.Spec.Template.Roles {
			if ms.Spec.Template.Roles[i].Name == rn {
				idx = i
			}
		}
		if idx < 0 {
			msg := fmt.Sprintf("ModelServing %s has no role %s", name, rn)
			c.setCondition(ConditionTargetFound, false, ReasonRoleNotFound, msg)
			c.setCondition(ConditionReady, false, ReasonRoleNotFound, msg)
			return nil
		}
		p := t.Roles[rn]
		ru := &roleUnit{name: rn, index: idx, current: 1, b: bounds{p.MinReplicas, p.MaxReplicas},
			fixed: p.MinReplicas == p.MaxReplicas && p.MinReplicas > 0}
		if r := ms.Spec.Template.Roles[idx].Replicas; r != nil {
			ru.current, ru.hasRepl = *r, true
		}
		roles = append(roles, ru)
	}
	c.setCondition(ConditionTargetFound, true, ReasonTargetFound, fmt.Sprintf("ModelServing %s, roles %v", name, names))

	var lastScale *metav1.Time
	if old := c.status.DisaggregatedStatus; old != nil {
		lastScale = latestScale(old.Roles)
	}
	allZero := true
	for _, ru := range roles {
		allZero = allZero && ru.current == 0
	}
	// A request for capacity acts on a disaggregated target only at zero
	// (both roles); each role is then sized from the demand by its own
	// metrics.
	wake := false

	var evs []unitEval
	anyOK := true
	for _, ru := range roles {
		ru.u = c.st.unit(name+"/"+ru.name, c.r.podConfig)
		c.noteExternal(ru.u, ms, fmt.Sprintf("replicas of role %s of ModelServing %s", ru.name, name), ru.current)
		if ru.fixed {
			ru.d = decision{replicas: ru.b.lo, mode: ModeStable}
			ru.reason = scaleReason(ru.current, ru.d.replicas)
			continue
		}
		p := t.Roles[ru.name]
		metrics := p.Metrics
		if len(metrics) == 0 {
			metrics = c.pol.Spec.Metrics
		}
		pods, err := c.r.entryPods(ctx, ms.Namespace, name, ru.name)
		if err != nil {
			return err
		}
		readings := c.source(ru.u).read(ctx, c.now, pods, requestsFor(metrics, p.MetricSources))
		ru.ev = evaluate(ru.current, ru.b.lo, ru.b.hi, c.tol, metrics, readings, float64(groups))
		var w wakeUp
		if allZero {
			w.collect(ru.u, ms, lastScale)
		}
		wake = wake || w.pending()
		ru.d, ru.reason = c.decide(ru.u, ru.current, ru.ev, ru.b.lo, ru.b.hi, w, requestsPerReplica(c.pol, metrics, p.MetricSources))
		anyOK = anyOK && (ru.ev.ok || ru.current == 0)
		evs = append(evs, unitEval{prefix: ru.name + ": ", ev: ru.ev})
	}

	ds := &workloadv1alpha1.DisaggregatedScalingStatus{}
	if len(roles) == 2 {
		num, den := roles[0], roles[1]
		var limits *ratioLimits
		if rc := t.RatioConstraint; rc != nil {
			if rc.NumeratorRole == roles[1].name {
				num, den = roles[1], roles[0]
			}
			limits = &ratioLimits{lo: rc.MinRatio.AsApproximateFloat64(), hi: rc.MaxRatio.AsApproximateFloat64()}
			ds.RatioStatus = &workloadv1alpha1.RoleRatioStatus{NumeratorRole: num.name, DenominatorRole: den.name,
				CurrentRatio: ratioString(num.current, den.current)}
		}
		n, d, adjusted := repairRoles(num.d.replicas, den.d.replicas, num.b, den.b, limits)
		if adjusted {
			ds.RatioAdjusted = true
			for _, x := range []struct {
				ru *roleUnit
				v  int32
			}{{num, n}, {den, d}} {
				if x.ru.d.replicas != x.v {
					x.ru.u.scaler.settle(x.v)
					x.ru.d.replicas = x.v
					x.ru.reason = ReasonRatioRepaired
					if x.ru.current == 0 && x.v > 0 && wake {
						x.ru.reason = ReasonScaledFromZero
					}
				}
			}
		}
		if limits != nil {
			if violates(n, d, limits) {
				c.setCondition(ConditionRatioConstraintViolated, true, ReasonRatioRepaired,
					fmt.Sprintf("%s/%s = %d/%d cannot be brought within [%g, %g] inside the roles' bounds", num.name, den.name, n, d, limits.lo, limits.hi))
			} else {
				c.setCondition(ConditionRatioConstraintViolated, false, ReasonWithinRatio,
					fmt.Sprintf("%s/%s = %d/%d", num.name, den.name, n, d))
			}
		}
	}

	// One JSON patch for every changed role: each role is tested by name
	// and by the count read this cycle, so a concurrent change fails the
	// whole patch and the next cycle starts from it.
	var ops []map[string]any
	for _, ru := range roles {
		if ru.d.replicas == ru.current {
			continue
		}
		path := fmt.Sprintf("/spec/template/roles/%d", ru.index)
		ops = append(ops, map[string]any{"op": "test", "path": path + "/name", "value": ru.name})
		if ru.hasRepl {
			ops = append(ops, map[string]any{"op": "test", "path": path + "/replicas", "value": ru.current})
		}
		ops = append(ops, map[string]any{"op": "add", "path": path + "/replicas", "value": ru.d.replicas})
	}
	oldRoles := map[string]*metav1.Time{}
	if old := c.status.DisaggregatedStatus; old != nil {
		for _, r := range old.Roles {
			oldRoles[r.Name] = r.LastScaleTime
		}
	}
	written := false
	if len(ops) > 0 {
		if err := c.patchRoles(ctx, ms, ops); err != nil {
			if werr := c.writeFailed(name, err); werr != nil {
				return werr
			}
		} else {
			written = true
		}
	}
	for _, ru := range roles {
		target := name + "/" + ru.name
		rs := workloadv1alpha1.TargetScalingStatus{Name: ru.name, CurrentReplicas: ru.current, DesiredReplicas: ru.d.replicas, Mode: ru.d.mode, LastScaleTime: oldRoles[ru.name]}
		if rs.Mode == "" {
			rs.Mode = ModeStable
		}
		c.record(target, ru.current, ru.d.replicas, rs.Mode, ru.ev)
		if written && ru.d.replicas != ru.current {
			ru.u.written = ru.d.replicas
			rs.LastScaleTime = &metav1.Time{Time: c.now}
			reason := ru.reason
			if reason == "" || ru.d.replicas == 0 {
				reason = scaleReason(ru.current, ru.d.replicas)
			}
			c.scaled(ms, target, ru.current, ru.d.replicas, reason, ru.ev.summary())
		}
		ds.Roles = append(ds.Roles, rs)
	}
	c.status.DisaggregatedStatus = ds
	if written || len(ops) == 0 {
		c.metricsReady(anyOK, allZero && !written, evs...)
	}
	return nil
}

func (c *cycle) patchRoles(ctx context.Context, ms *workloadv1alpha1.ModelServing, ops []map[string]any) error {
	data, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	return c.r.Patch(ctx, ms.DeepCopy(), client.RawPatch(types.JSONPatchType, data))
}

func ratioString(n, d int32) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3g", float64(n)/float64(d))
}

func violates(n, d int32, l *ratioLimits) bool {
	if n == 0 && d == 0 {
		return false
	}
	if d == 0 {
		return true
	}
	r := float64(n) / float64(d)
	return r < l.lo-1e-9 || r > l.hi+1e-9
}
