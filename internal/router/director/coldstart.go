package director

import (
	"errors"
	"math"
	"net/http"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/coldstart"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/openai"
)

// hold waits, behind the requests held before it, until the ModelServer
// has a ready pod with room, while the holder asks the autoscaler for
// capacity. done must be called when the request has finished.
func (d *Director) hold(c *call, ms *networkingv1alpha1.ModelServer, key string, usableOnly bool) (done func(), err error) {
	done, held, err := d.o.Hold.Hold(c.r.Context(), ms, key, func() int { return d.holdCapacity(ms, key, usableOnly) })
	c.entry.DurationHeld += float64(held.Microseconds()) / 1000
	model := c.parsed.Model
	switch {
	case err == nil:
		return done, nil
	case errors.Is(err, coldstart.ErrOverflow):
		return nil, openai.Errorf(http.StatusTooManyRequests, "model_starting", "model %q is starting (ModelServer %s has no ready pod yet) and as many requests as the router holds are already waiting for it; retry later", model, key)
	case errors.Is(err, coldstart.ErrTimeout):
		return nil, openai.Errorf(http.StatusGatewayTimeout, "model_starting", "model %q is starting: ModelServer %s had no ready pod within the hold timeout (%v)", model, key, err)
	case errors.Is(err, coldstart.ErrNotServable):
		return nil, openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "ModelServer %s has no ready pods and selects no ModelServing that could be scaled up", key)
	case c.r.Context().Err() != nil:
		return nil, openai.Errorf(499, "client_cancelled", "client cancelled the request while model %q was starting", model)
	}
	return nil, openai.Errorf(http.StatusServiceUnavailable, "model_starting", "model %q: waiting for a ready pod of ModelServer %s: %v", model, key, err)
}

// holdCapacity is how many held requests the ModelServer's ready pods take
// at once (coldstart.Capacity): 0 while it cannot be served. Per pod it is
// the fair queue's maxInFlightPerPod when that is set; otherwise the
// holder's ReleasePerPod, changed by what the engine's last scrape shows:
// with requests waiting it is full and takes only what the router already
// has in flight to it; running at least the budget with none waiting it
// has shown room, and takes twice what it runs. So a backlog reaches a
// fresh pod a batch at a time, in arrival order, the pods that turn ready
// next get their share, and an engine with many slots is filled within a
// few scrapes. A disaggregated ModelServer, or one whose pods are all
// failing (the request then fails as without holding), is not paced.
func (d *Director) holdCapacity(ms *networkingv1alpha1.ModelServer, key string, usableOnly bool) int {
	var buf [16]*datastore.Endpoint
	eps, total := d.o.Store.Endpoints(key, buf[:0])
	if !servable(ms, eps, total, usableOnly) {
		return 0
	}
	per := d.o.Hold.ReleasePerPod()
	fixed := false
	if d.o.Fairness != nil {
		if f := d.o.Fairness(); f != nil && f.MaxInFlightPerPod > 0 {
			per, fixed = f.MaxInFlightPerPod, true
		}
	}
	if len(eps) == 0 || per <= 0 || (ms.Spec.WorkloadSelector != nil && ms.Spec.WorkloadSelector.PDGroup != nil) {
		return math.MaxInt
	}
	sum := 0
	for _, e := range eps {
		n := per
		if m := e.Metrics(); !fixed && m.Scraped {
			switch {
			case m.Waiting > 0 && m.Running > 0:
				n = int(e.InFlight())
			case m.Waiting == 0 && int(m.Running) >= per:
				n = 2 * int(m.Running)
			}
		}
		sum += n
	}
	return sum
}
