package director

import (
	"context"
	"slices"
	"strings"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/session"
)

// sessionOf sets c.sticky when the ModelServer has session affinity and
// the request carries a session key, and returns a copy of the candidates
// (scheduling reorders and reuses them) for stick.
func (d *Director) sessionOf(c *call, ms *networkingv1alpha1.ModelServer, server string, eps []*framework.Endpoint) []*framework.Endpoint {
	tp := ms.Spec.TrafficPolicy
	if tp == nil || tp.SessionSticky == nil || d.o.Affinity == nil {
		return nil
	}
	s, ok := session.NewSession(server, tp.SessionSticky, c.r)
	if !ok {
		return nil
	}
	c.sticky = &s
	return slices.Clone(eps)
}

// stick applies session affinity to a full ranking: the bound pod moves to
// the front when it passed the filters (a pod they removed, such as one
// with a long queue, is saturated: the session moves), and the ranking is
// cut to topN. all are the candidates before filtering. For a PD
// ModelServer these are the decode pods.
func (d *Director) stick(c *call, all []*framework.Endpoint, res *framework.Result, topN int) {
	defer func() {
		if len(res.Ranked) > topN {
			res.Ranked = res.Ranked[:topN]
		}
	}()
	if c.sticky == nil {
		return
	}
	passed := func(ep *framework.Endpoint) int {
		for i, cd := range res.Ranked {
			if cd.Endpoint == ep {
				return i
			}
		}
		return -1
	}
	dec, err := d.o.Affinity().Pick(c.r.Context(), *c.sticky, all, func(ep *framework.Endpoint) bool { return passed(ep) < 0 })
	if err != nil {
		d.o.Log.V(1).Info("session store unavailable; scheduling without affinity", "error", err.Error())
	}
	c.stickyOutcome = dec.Outcome.String()
	if m := d.o.Metrics; m != nil {
		m.SessionAffinity.WithLabelValues(c.stickyOutcome).Inc()
	}
	if dec.Outcome != session.Bound {
		return
	}
	if i := passed(dec.Endpoint); i > 0 {
		cd := res.Ranked[i]
		copy(res.Ranked[1:i+1], res.Ranked[:i])
		res.Ranked[0] = cd
	}
}

// recordSession binds the request's session to the pod that served it.
func (d *Director) recordSession(c *call, pod string) {
	if c.sticky == nil || pod == "" {
		return
	}
	// The client may be gone already; the binding is still worth keeping.
	if err := d.o.Affinity().Record(context.WithoutCancel(c.r.Context()), *c.sticky, pod); err != nil {
		d.o.Log.V(1).Info("session binding not recorded", "error", err.Error())
	}
}

// withSession adds the affinity outcome to a decision header.
func (c *call) withSession(js string) string {
	if c.stickyOutcome == "" || !strings.HasSuffix(js, "}") {
		return js
	}
	return js[:len(js)-1] + `,"session":"` + c.stickyOutcome + `"}`
}
