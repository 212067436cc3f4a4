package director

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/kvconnector"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/scheduler"
)

// Migration bounds mid-stream migration.
type Migration struct {
	// MaxAttempts is how many continuations a failed stream may send (0:
	// none, the stream ends with an SSE error event).
	MaxAttempts int
	// IdleTimeout migrates a stream whose engine is silent this long
	// between two chunks (0: off).
	IdleTimeout time.Duration
}

// DefaultMigration is used when Options.Migration is nil.
var DefaultMigration = Migration{MaxAttempts: 2}

func (d *Director) migration() Migration {
	if d.o.Migration == nil {
		return DefaultMigration
	}
	return d.o.Migration()
}

// migrationTarget is what a continuation needs to find another pod.
type migrationTarget struct {
	ms    *networkingv1alpha1.ModelServer
	req   *framework.Request
	sched *scheduler.Scheduler
	limit Migration
}

// track starts tracking a streamed chat or completions request of a
// ModelServer, so that it can migrate.
func (d *Director) track(c *call, ms *networkingv1alpha1.ModelServer, req *framework.Request, sched *scheduler.Scheduler) {
	if !c.parsed.Stream {
		return
	}
	p := c.r.URL.Path
	chat := strings.HasSuffix(p, "/chat/completions")
	if !chat && !strings.HasSuffix(p, "/completions") {
		return
	}
	c.stream.on, c.stream.chat = true, chat
	c.migTarget = migrationTarget{ms: ms, req: req, sched: sched, limit: d.migration()}
}

// migrationOutcome labels kthena_router_migrations_total.
const (
	migCompleted   = "completed"
	migExhausted   = "exhausted"
	migNoPod       = "no_pod"
	migUnsupported = "unsupported"
	migDisabled    = "disabled"
	// migRetriedWhole: a non-streamed answer failed mid-body and was sent
	// again (nothing had reached the client).
	migRetriedWhole = "retried_whole"
)

func (d *Director) countMigration(c *call, outcome string) {
	if m := d.o.Metrics; m != nil {
		m.Migrations.WithLabelValues(c.entry.ModelServer, outcome).Inc()
	}
}

// migrate continues a stream whose engine failed after the first byte on
// other pods of the same ModelServer, at most limit.MaxAttempts times.
// When it cannot, the stream ends with an SSE error event.
func (d *Director) migrate(c *call, failed string, cause *attemptError) error {
	t := &c.migTarget
	tried := []string{failed}
	ctx := c.r.Context()
	for n := 0; ; n++ {
		sf := c.stream.analyse()
		if sf.finish != "" {
			// Every token arrived; only the end of the stream was lost.
			d.countMigration(c, migCompleted)
			return d.endStream(c, sf, nil)
		}
		if sf.unsupported != "" {
			d.countMigration(c, migUnsupported)
			return d.failStream(c, cause, "cannot continue it on another pod: "+sf.unsupported)
		}
		if t.limit.MaxAttempts == 0 {
			d.countMigration(c, migDisabled)
			return d.failStream(c, cause, "migration is off")
		}
		if n >= t.limit.MaxAttempts {
			d.countMigration(c, migExhausted)
			return d.failStream(c, cause, fmt.Sprintf("%d continuation(s) failed", n))
		}
		body, remaining, err := continuationBody(c.body, c.stream.chat, t.req.UpstreamModel, sf.text.String(), sf.tokens)
		if err != nil {
			d.countMigration(c, migUnsupported)
			return d.failStream(c, cause, "cannot continue it on another pod: "+err.Error())
		}
		if !remaining {
			// The token limit is reached: the answer ends here.
			d.countMigration(c, migCompleted)
			return d.endStream(c, sf, []byte(`"length"`))
		}
		ep, view, why := d.otherPod(c, tried)
		if ep == nil {
			d.countMigration(c, migNoPod)
			return d.failStream(c, cause, why)
		}
		tried = append(tried, ep.Key)
		c.stream.cont = &continuation{id: sf.id, created: sf.created, model: sf.model, object: sf.object,
			streamed: sf.tokens, includeUsage: c.parsed.IncludeUsage}
		c.entry.SelectedPod = ep.Key
		c.entry.UpstreamAttempts++
		t.sched.PreRequest(ctx, t.req, view)
		ae := d.continueOn(c, ep, body)
		if ae == nil && c.stream.done {
			d.countMigration(c, migCompleted)
			c.usage = c.stream.cont.total()
			return nil
		}
		if ctx.Err() != nil {
			return openai.Errorf(499, "client_cancelled", "client cancelled the request")
		}
		if ae == nil {
			ae = &attemptError{msg: "stream ended without [DONE]"}
		}
		if ae.connect {
			ep.MarkFailed()
		}
		cause = ae
	}
}

// otherPod ranks the ModelServer's pods that have not been tried (for a
// disaggregated ModelServer: its decode pods, which then prefill the
// continuation themselves) and returns the best.
func (d *Director) otherPod(c *call, tried []string) (*datastore.Endpoint, *framework.Endpoint, string) {
	t := &c.migTarget
	var buf [16]*datastore.Endpoint
	eps, _ := d.o.Store.Endpoints(t.req.ModelServer, buf[:0])
	sched := t.sched
	if ws := t.ms.Spec.WorkloadSelector; ws != nil && ws.PDGroup != nil {
		if kvconnector.For(t.ms).Concurrent() {
			return nil, nil, "cannot continue it: the decode pods of this ModelServer's connector cannot prefill a continuation"
		}
		_, eps = splitPD(ws.PDGroup, eps)
		sched = sched.Decode()
	}
	eps = slices.DeleteFunc(eps, func(e *datastore.Endpoint) bool { return e.Removed() || slices.Contains(tried, e.Key) })
	if len(eps) == 0 {
		return nil, nil, "no other pod of ModelServer " + t.req.ModelServer + " to continue it on"
	}
	views, byKey := viewsOf(eps)
	res, err := sched.Rank(c.r.Context(), t.req, views, d.recorder())
	if err != nil || len(res.Ranked) == 0 {
		return nil, nil, fmt.Sprintf("no other pod of ModelServer %s can take its continuation: %v", t.req.ModelServer, err)
	}
	v := res.Ranked[0].Endpoint
	return byKey[v], v, ""
}

// continueOn sends a continuation to ep and relays its stream into the
// client's.
func (d *Director) continueOn(c *call, ep *datastore.Endpoint, body []byte) *attemptError {
	release := ep.Acquire()
	defer release()
	if m := d.o.Metrics; m != nil {
		m.ActiveUpstream.Inc()
		defer m.ActiveUpstream.Dec()
	}
	ctx, cancel := context.WithCancelCause(c.r.Context())
	defer cancel(nil)
	b := budgetOf(c.migTarget.ms, 1)
	resp, ae := d.roundTrip(ctx, cancel, c, d.engineTarget(c, ep), [][]byte{body}, len(body), b.timeout)
	if ae != nil {
		return ae
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return statusError(resp)
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return &attemptError{status: resp.StatusCode, msg: "continuation answered without a stream"}
	}
	idle := time.AfterFunc(d.o.StreamIdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	if err := d.relayStream(c, resp.Body, idle, false); err != nil {
		if context.Cause(ctx) == errIdle {
			return &attemptError{status: resp.StatusCode, timeout: true, msg: "continuation: engine sent nothing within the idle timeout"}
		}
		return &attemptError{status: resp.StatusCode, msg: "continuation: " + err.Error()}
	}
	return nil
}

// endStream closes a stream whose tokens all arrived: an optional last
// chunk with finish_reason, the usage chunk the client asked for (when an
// engine reported one), and [DONE].
func (d *Director) endStream(c *call, sf *soFar, finish []byte) error {
	k := c.stream.cont
	if k == nil {
		k = &continuation{id: sf.id, created: sf.created, model: sf.model, object: sf.object, streamed: sf.tokens}
	}
	var b []byte
	if finish != nil {
		b = append(b, `data: {"id":`...)
		b = append(b, orNull(k.id)...)
		b = append(b, `,"object":`...)
		b = append(b, orNull(k.object)...)
		b = append(b, `,"created":`...)
		b = append(b, orNull(k.created)...)
		b = append(b, `,"model":`...)
		b = append(b, orNull(k.model)...)
		if c.stream.chat {
			b = append(b, `,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":`...)
		} else {
			b = append(b, `,"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":`...)
		}
		b = append(b, finish...)
		b = append(b, "}]}\n\n"...)
	}
	if k.usage.Found {
		c.usage = k.total()
		if c.parsed.IncludeUsage {
			b = append(b, k.usageChunk(c.usage)...)
		}
	}
	b = append(b, "data: [DONE]\n\n"...)
	c.stream.done = true
	if _, err := c.w.Write(b); err != nil {
		return openai.Errorf(499, "client_cancelled", "client went away: %v", err)
	}
	if fl, ok := c.w.(http.Flusher); ok {
		fl.Flush()
	}
	return nil
}

// failStream ends the client's stream with an SSE error event and returns
// the error for the access log.
func (d *Director) failStream(c *call, cause *attemptError, why string) error {
	msg := fmt.Sprintf("model %q: the engine failed mid-stream on pod %s (%s); %s", c.parsed.Model, c.entry.SelectedPod, cause.msg, why)
	_, _ = c.w.Write(sseError("upstream_stream_error", msg, http.StatusBadGateway))
	if fl, ok := c.w.(http.Flusher); ok {
		fl.Flush()
	}
	c.entry.ErrorOrigin = "upstream"
	return &openai.Error{Status: c.entry.StatusCode, Type: "upstream_stream", Message: msg, Origin: "upstream"}
}
