// Package director orchestrates one inference request: route match →
// endpoints → schedule → proxy with failover, retry and timeouts → usage
// accounting, access log and metrics.
package director

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/accesslog"
	"github.com/kthena/kthena/internal/router/auth"
	"github.com/kthena/kthena/internal/router/coldstart"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/fairness"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/metrics"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/ratelimit"
	"github.com/kthena/kthena/internal/router/routing"
	"github.com/kthena/kthena/internal/router/scheduler"
	"github.com/kthena/kthena/internal/router/session"
)

// DecisionRequestHeader asks for the scheduler's decision; the answer is
// in DecisionHeader.
const (
	DecisionRequestHeader = "X-Kthena-Decision"
	DecisionHeader        = "X-Kthena-Decision"
	RequestIDHeader       = "X-Request-Id"
)

// Datastore is the view of the store the director needs.
type Datastore interface {
	Routes(model string) ([]*networkingv1alpha1.ModelRoute, bool)
	Server(nsName string) *networkingv1alpha1.ModelServer
	Endpoints(server string, dst []*datastore.Endpoint) ([]*datastore.Endpoint, int)
	Provider(nsName string) *networkingv1alpha1.ExternalModelProvider
	SecretValue(ns, name, key string) (string, bool)
}

// Options configure a Director.
type Options struct {
	Store     Datastore
	Scheduler func() *scheduler.Scheduler
	// Affinity keeps session bindings (nil func or result: no affinity).
	Affinity  func() *session.Affinity
	Transport http.RoundTripper
	Metrics   *metrics.Metrics
	AccessLog *accesslog.Logger
	Log       logr.Logger
	// Tokenizer counts input tokens when set.
	Tokenizer framework.TokenCounter
	// PromptLimit is how many bytes of prompt text are flattened for every
	// request (default 8 KiB); the rest is flattened only when a plugin or
	// the tokenizer reads the whole prompt.
	PromptLimit int
	// StreamIdleTimeout aborts a response that sends nothing for this
	// long (0: 5 minutes).
	StreamIdleTimeout time.Duration
	// Hold holds requests of a ModelServer with no ready pod until one is
	// ready (nil: they fail at once with 503).
	Hold *coldstart.Holder
	// RateLimits enforces ModelRoute.spec.rateLimit (nil: not enforced).
	RateLimits *ratelimit.Limiter
	// Auth returns the authenticator whose rules authorize models (nil
	// func or result: every caller may use every model).
	Auth func() *auth.Authenticator
	// Fairness returns the fair queue's policy (nil func or result: no
	// queue).
	Fairness func() *Fairness
	// Migration bounds mid-stream migration (nil: DefaultMigration).
	Migration func() Migration
	// Stages records when each request passed each step and puts the
	// timings in its access log entry (a few clock reads per request;
	// off, none).
	Stages bool
}

// Fairness is the fair queue as the director applies it.
type Fairness struct {
	Queues *fairness.Queues
	// MaxInFlightPerPod > 0 is a fixed capacity per pod; 0 reads
	// saturation from the engines.
	MaxInFlightPerPod int
	PriorityHeader    string
}

// Director handles inference requests. It is safe for concurrent use.
type Director struct {
	o       Options
	matcher *routing.Matcher
	// saturatedAt is, per endpoint key, how many requests the engine was
	// running when it last reported requests waiting: its batch size at
	// saturation, learned from its own metrics.
	saturatedAt sync.Map
	// secureRT and insecureRT reach ExternalModelProviders.
	secureRT, insecureRT http.RoundTripper
}

// New returns a Director.
func New(o Options) *Director {
	if o.StreamIdleTimeout == 0 {
		o.StreamIdleTimeout = 5 * time.Minute
	}
	if o.PromptLimit == 0 {
		o.PromptLimit = 8192
	}
	d := &Director{o: o, matcher: routing.NewMatcher(), secureRT: newExternalTransport(false), insecureRT: newExternalTransport(true)}
	// Forget what was learned about an engine when its pod goes.
	if n, ok := o.Store.(interface{ OnEndpointRemoved(func(key string)) }); ok {
		n.OnEndpointRemoved(func(key string) { d.saturatedAt.Delete(key) })
	}
	return d
}

// call is the state of one request.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	body   []byte
	parsed *openai.Request
	// wholePrompt renders the whole flattened prompt on first use when
	// parsed.Prompt is a cut of it (nil otherwise).
	wholePrompt func() []byte
	wholeOnce   sync.Once
	whole       []byte
	// inputTokens is the prompt's token count once counted (0: not yet).
	inputTokens int
	entry       accesslog.Entry
	start       time.Time
	upStart     time.Time
	respFrom    time.Time
	usage       openai.Usage
	decision    bool
	// sticky is the request's session when its ModelServer has
	// sessionSticky; stickyOutcome what the binding said.
	sticky        *session.Session
	stickyOutcome string
	// stream tracks a streamed engine response for migration; migTarget
	// is where a continuation may go.
	stream    streamState
	migTarget migrationTarget
	// wholeRetries counts non-streamed answers that failed mid-body.
	wholeRetries int
	// marks says whether stages are recorded (Options.Stages).
	marks  bool
	stages accesslog.Stages
	// eps backs the ModelServer's endpoint list (the store appends to it;
	// in the call, which is allocated anyway, rather than a heap array of
	// its own).
	eps [16]*datastore.Endpoint
}

// mark records that the request reached a step now.
func (c *call) mark(at *time.Duration) {
	if c.marks {
		*at = time.Since(c.start)
	}
}

// Handle serves one inference request whose body has been read.
func (d *Director) Handle(w http.ResponseWriter, r *http.Request, body []byte, start time.Time) {
	c := &call{w: w, r: r, body: body, start: start, marks: d.o.Stages}
	c.mark(&c.stages.BodyRead)
	c.entry = accesslog.Entry{Timestamp: start, Method: r.Method, Path: r.URL.Path, Protocol: r.Proto}
	c.decision = r.Header.Get(DecisionRequestHeader) != ""
	rid := r.Header.Get(RequestIDHeader)
	if rid == "" {
		rid = strconv.FormatUint(rand.Uint64(), 16)
		r.Header.Set(RequestIDHeader, rid)
	}
	c.entry.RequestID = rid
	if m := d.o.Metrics; m != nil {
		m.Active.Inc()
		m.ActiveDownstream.Inc()
		defer m.Active.Dec()
		defer m.ActiveDownstream.Dec()
	}
	err := d.serve(c)
	c.stream.release()
	if err != nil {
		var re *openai.Error
		if !errors.As(err, &re) {
			re = openai.Errorf(http.StatusInternalServerError, "internal", "%v", err)
		}
		c.entry.Error = &accesslog.Error{Type: re.Type, Message: re.Message}
		c.entry.ErrorOrigin = re.Origin
		c.entry.StatusCode = re.Status
		if c.respFrom.IsZero() { // nothing written yet
			re.Write(w)
		}
	}
	d.finish(c)
}

func (d *Director) finish(c *call) {
	now := time.Now()
	e := &c.entry
	e.InputTokens, e.OutputTokens = c.usage.PromptTokens, c.usage.CompletionTokens
	ms := func(a, b time.Time) float64 {
		if a.IsZero() || b.IsZero() {
			return 0
		}
		return float64(b.Sub(a).Microseconds()) / 1000
	}
	e.DurationTotal = ms(c.start, now)
	if !c.upStart.IsZero() {
		e.DurationRequestProcessing = ms(c.start, c.upStart)
		e.DurationUpstreamProcessing = ms(c.upStart, c.respFrom)
		e.DurationResponseProcessing = ms(c.respFrom, now)
	} else {
		e.DurationRequestProcessing = e.DurationTotal
	}
	if c.marks {
		c.stages.End = now.Sub(c.start)
		e.Stages = &c.stages
	}
	if m := d.o.Metrics; m != nil {
		status := statusLabel(e.StatusCode)
		errType := ""
		if e.Error != nil {
			errType = e.Error.Type
		}
		rm := m.Request(metrics.RequestLabels{Model: e.ModelName, Path: e.Path, Status: status, ErrorType: errType, Route: e.ModelRoute,
			BackendType: e.BackendType, BackendName: e.BackendName, UpstreamModel: e.UpstreamModel})
		rm.Count.Inc()
		rm.Duration.Observe(now.Sub(c.start).Seconds())
		if c.usage.Found {
			in, out := m.TokenCounters(e.ModelName)
			in.Add(float64(c.usage.PromptTokens))
			out.Add(float64(c.usage.CompletionTokens))
		}
	}
	d.o.AccessLog.Log(e)
}

// statusLabels are the status codes' label values, formatted once
// (strconv.Itoa allocates for codes of three digits).
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

func (d *Director) serve(c *call) error {
	parsed, err := openai.Parse(c.body, d.o.PromptLimit)
	if err != nil {
		return openai.Errorf(http.StatusBadRequest, "request_parsing", "%v", err)
	}
	c.parsed = parsed
	if len(parsed.Prompt) >= d.o.PromptLimit {
		c.wholePrompt = c.renderWholePrompt
	}
	c.mark(&c.stages.Parsed)
	c.entry.ModelName = parsed.Model
	if id := auth.IdentityFrom(c.r.Context()); id != nil {
		c.entry.Tenant = id.Subject
		if d.o.Auth != nil {
			if a := d.o.Auth(); a != nil {
				if err := a.Authorize(id, parsed.Model); err != nil {
					var ae *auth.Error
					errors.As(err, &ae)
					return openai.Errorf(ae.Status, ae.Type, "%s", ae.Message)
				}
			}
		}
	}

	routes, lora := d.o.Store.Routes(parsed.Model)
	tgt, err := d.matcher.Match(routes, lora, routing.Input{Model: parsed.Model, Path: c.r.URL.Path, Headers: c.r.Header}, rand.IntN)
	switch {
	case errors.Is(err, routing.ErrNoRoute):
		return openai.Errorf(http.StatusNotFound, "route_not_found", "model %q not found: no ModelRoute serves it", parsed.Model)
	case errors.Is(err, routing.ErrNoRule):
		return openai.Errorf(http.StatusNotFound, "model_route_matching", "model %q: no rule of its ModelRoutes matched this request", parsed.Model)
	case err != nil:
		return openai.Errorf(http.StatusServiceUnavailable, "model_route_matching", "%v", err)
	}
	c.entry.ModelRoute = tgt.Route.Namespace + "/" + tgt.Route.Name
	if lim := ratelimit.LimitsOf(tgt.Route.Spec.RateLimit); !lim.Empty() && d.o.RateLimits != nil {
		if err := d.o.RateLimits.Admit(c.r.Context(), c.entry.ModelRoute, c.entry.Tenant, parsed.Model, lim, d.inputTokens(c)); err != nil {
			return rateLimited(c, err)
		}
		defer func() {
			if c.usage.Found {
				d.o.RateLimits.Consume(context.WithoutCancel(c.r.Context()), c.entry.ModelRoute, c.entry.Tenant, lim, int(c.usage.CompletionTokens))
			}
		}()
	}
	if tgt.ExternalProvider != "" {
		c.entry.BackendType, c.entry.BackendName = "ExternalProvider", tgt.ExternalProvider
		p := d.o.Store.Provider(tgt.ExternalProvider)
		if p == nil {
			return openai.Errorf(http.StatusNotFound, "provider_discovery", "ExternalModelProvider %s (target of route %s) not found", tgt.ExternalProvider, c.entry.ModelRoute)
		}
		return d.external(c, p)
	}
	c.entry.BackendType, c.entry.BackendName, c.entry.ModelServer = "ModelServer", tgt.ModelServer, tgt.ModelServer
	if m := d.o.Metrics; m != nil {
		g := m.InFlight(tgt.ModelServer)
		g.Inc()
		defer g.Dec()
	}
	ms := d.o.Store.Server(tgt.ModelServer)
	if ms == nil {
		return openai.Errorf(http.StatusNotFound, "pod_discovery", "ModelServer %s (target of route %s) not found", tgt.ModelServer, c.entry.ModelRoute)
	}
	upstreamModel := parsed.Model
	if !tgt.LoRA && ms.Spec.Model != nil && *ms.Spec.Model != "" {
		upstreamModel = *ms.Spec.Model
	}
	c.entry.UpstreamModel = upstreamModel
	c.mark(&c.stages.Routed)

	req := &framework.Request{
		ID: c.entry.RequestID, Model: parsed.Model, UpstreamModel: upstreamModel, LoRA: tgt.LoRA,
		ModelServer: tgt.ModelServer, Path: c.r.URL.Path, Headers: c.r.Header,
		Prompt: parsed.Prompt, RenderWholePrompt: c.wholePrompt, PromptJSON: parsed.PromptJSON(c.body), PromptBytes: parsed.PromptBytes, Stream: parsed.Stream,
	}
	if d.o.Tokenizer != nil && len(parsed.Prompt) > 0 {
		req.InputTokens = d.inputTokens(c)
	}
	buf := &c.eps
	for retried := false; ; retried = true {
		eps, total := d.o.Store.Endpoints(tgt.ModelServer, buf[:0])
		if d.o.Hold.Enabled() && (!servable(ms, eps, total, retried) || d.o.Hold.Holds(tgt.ModelServer)) {
			done, err := d.hold(c, ms, tgt.ModelServer, retried)
			if err != nil {
				return err
			}
			defer done()
			eps, total = d.o.Store.Endpoints(tgt.ModelServer, buf[:0])
		}
		if !retried && d.o.Fairness != nil {
			if f := d.o.Fairness(); f != nil {
				ticket, err := d.queue(c, f, tgt.ModelServer)
				if err != nil {
					return err
				}
				defer func() { ticket.Release(int(c.usage.CompletionTokens)) }()
				eps, total = d.o.Store.Endpoints(tgt.ModelServer, buf[:0])
			}
		}
		if len(eps) == 0 {
			if total == 0 {
				return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "ModelServer %s has no ready pods", tgt.ModelServer)
			}
			return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "all %d pods of ModelServer %s are failing", total, tgt.ModelServer)
		}
		err := d.dispatch(c, ms, req, eps)
		if err == nil || retried || !c.respFrom.IsZero() || !d.o.Hold.Enabled() || c.r.Context().Err() != nil {
			return err
		}
		// Every pod the request could go to failed or left while it was
		// tried (the last pod of a model being scaled down to zero, say):
		// wait for the next one rather than fail. A pod that is still
		// there and answers is a real failure, returned as is.
		if eps, total = d.o.Store.Endpoints(tgt.ModelServer, buf[:0]); servable(ms, eps, total, true) {
			return err
		}
	}
}

// dispatch schedules the request on eps and proxies it.
func (d *Director) dispatch(c *call, ms *networkingv1alpha1.ModelServer, req *framework.Request, eps []*datastore.Endpoint) error {
	sched := d.o.Scheduler()
	d.track(c, ms, req, sched)
	if ms.Spec.WorkloadSelector != nil && ms.Spec.WorkloadSelector.PDGroup != nil {
		return d.servePD(c, sched, ms, req, eps)
	}
	ptrs, byKey := viewsOf(eps)
	all := d.sessionOf(c, ms, req.ModelServer, ptrs)
	res, err := sched.Rank(c.r.Context(), req, ptrs, d.recorder())
	if err != nil {
		if c.decision {
			c.w.Header().Set(DecisionHeader, decisionJSON(res, ""))
		}
		return openai.Errorf(http.StatusServiceUnavailable, "scheduling", "no pod of ModelServer %s can take the request: %v", req.ModelServer, err)
	}
	c.mark(&c.stages.Scheduled)
	d.stick(c, all, res, sched.TopN())
	segs, n := c.parsed.Splice(c.body, openai.Rewrite{Model: req.UpstreamModel, ForceUsage: true})
	ctx := c.r.Context()
	err = d.proxy(c, func(ep *framework.Endpoint) { sched.PreRequest(ctx, req, ep) },
		func(chosen string) string { return c.withSession(decisionJSON(res, chosen)) }, res, byKey, ms, segs, n)
	if err == nil {
		d.recordSession(c, c.entry.SelectedPod)
	}
	return err
}

// queue waits in the ModelServer's fair queue while its engines are
// saturated.
func (d *Director) queue(c *call, f *Fairness, key string) (*fairness.Ticket, error) {
	prio := 0
	if v := c.r.Header.Get(f.PriorityHeader); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			return nil, openai.Errorf(http.StatusBadRequest, "request_parsing", "header %s: want an integer priority, got %q", f.PriorityHeader, v)
		}
		prio = p
	}
	ticket, waited, err := f.Queues.Admit(c.r.Context(), key, c.entry.Tenant, prio, d.inputTokens(c), func() int { return d.capacity(key, f) })
	c.entry.DurationQueued = float64(waited.Microseconds()) / 1000
	switch {
	case err == nil:
		return ticket, nil
	case errors.Is(err, fairness.ErrQueueFull), errors.Is(err, fairness.ErrTenantFull):
		return nil, openai.Errorf(http.StatusTooManyRequests, "queue_full", "model %q is saturated and its queue is full: %v", c.parsed.Model, err)
	case errors.Is(err, fairness.ErrTimeout):
		return nil, openai.Errorf(http.StatusGatewayTimeout, "queue_timeout", "model %q is saturated: %v", c.parsed.Model, err)
	case c.r.Context().Err() != nil:
		return nil, openai.Errorf(499, "client_cancelled", "client cancelled the request while it waited in the queue")
	}
	return nil, openai.Errorf(http.StatusInternalServerError, "internal", "%v", err)
}

// capacity is how many requests a ModelServer's engines take at once: a
// fixed number per pod, or, from the engines' own state, what each engine
// runs at saturation (learned when it last had requests waiting) plus one
// to keep it busy between an answer and the next admission. Until every
// pod has been seen saturated there is no evidence of a limit, and
// admission is unbounded. Counting what engines run rather than what they
// hold keeps their own FCFS queues short, so that the fair queue, not the
// engines, decides who goes next.
func (d *Director) capacity(key string, f *Fairness) int {
	var buf [16]*datastore.Endpoint
	eps, _ := d.o.Store.Endpoints(key, buf[:0])
	if f.MaxInFlightPerPod > 0 {
		return len(eps) * f.MaxInFlightPerPod
	}
	total := 0
	for _, e := range eps {
		m := e.Metrics()
		if !m.Scraped {
			return math.MaxInt
		}
		if m.Waiting > 0 && m.Running > 0 {
			d.saturatedAt.Store(e.Key, int(m.Running))
		}
		n, ok := d.saturatedAt.Load(e.Key)
		if !ok {
			return math.MaxInt
		}
		total += n.(int) + 1
	}
	return total
}

func (c *call) renderWholePrompt() []byte {
	c.wholeOnce.Do(func() { c.whole = c.parsed.FlattenPrompt(c.body, len(c.body)) })
	return c.whole
}

// inputTokens counts a request's prompt tokens for rate limits: with the
// tokenizer when one is configured, else about four bytes of prompt text
// per token (prompts are mostly English and code).
func (d *Director) inputTokens(c *call) int {
	p := c.parsed
	if d.o.Tokenizer == nil || len(p.Prompt) == 0 {
		return (p.PromptBytes + 3) / 4
	}
	if c.inputTokens == 0 {
		prompt := p.Prompt
		if c.wholePrompt != nil {
			prompt = c.wholePrompt()
		}
		c.inputTokens = d.o.Tokenizer.Count(string(prompt))
	}
	return c.inputTokens
}

// rateLimited is the 429 of a request over a token rate limit.
func rateLimited(c *call, err error) error {
	var denied *ratelimit.Denied
	if !errors.As(err, &denied) {
		return openai.Errorf(http.StatusInternalServerError, "rate_limit", "%v", err)
	}
	if !denied.Never {
		c.w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(denied.RetryAfter.Seconds())))))
	}
	return openai.Errorf(http.StatusTooManyRequests, denied.Kind+"_rate_limit", "model %q: %v", c.parsed.Model, denied)
}

// servable reports whether a ModelServer can be scheduled at all: it has
// ready pods (of both roles when disaggregated). Pods that are there but
// marked failing do not make a cold start, so a new request fails at once;
// usableOnly counts only pods not marked failing (for a request whose
// pods all failed under it).
func servable(ms *networkingv1alpha1.ModelServer, eps []*datastore.Endpoint, total int, usableOnly bool) bool {
	if total > len(eps) && !usableOnly {
		return true
	}
	if ws := ms.Spec.WorkloadSelector; ws != nil && ws.PDGroup != nil {
		p, dc := splitPD(ws.PDGroup, eps)
		return len(p) > 0 && len(dc) > 0
	}
	return len(eps) > 0
}

// viewsOf returns the scheduler's views of eps and the endpoint behind
// each view.
func viewsOf(eps []*datastore.Endpoint) ([]*framework.Endpoint, map[*framework.Endpoint]*datastore.Endpoint) {
	views := make([]framework.Endpoint, len(eps))
	ptrs := make([]*framework.Endpoint, len(eps))
	byKey := make(map[*framework.Endpoint]*datastore.Endpoint, len(eps))
	for i, e := range eps {
		e.View(&views[i])
		ptrs[i] = &views[i]
		byKey[ptrs[i]] = e
	}
	return ptrs, byKey
}

func (d *Director) recorder() scheduler.Recorder {
	if d.o.Metrics != nil {
		return d.o.Metrics
	}
	return nil
}

type decision struct {
	Scorers    []framework.WeightedName  `json:"scorers"`
	Filtered   []framework.FilterOutcome `json:"filtered,omitempty"`
	Considered int                       `json:"considered"`
	Chosen     string                    `json:"chosen,omitempty"`
	Candidates []decisionCandidate       `json:"candidates"`
}

type decisionCandidate struct {
	Pod    string             `json:"pod"`
	Total  float64            `json:"total"`
	Scores map[string]float64 `json:"scores"`
}

func decisionJSON(res *framework.Result, chosen string) string {
	if res == nil {
		return "{}"
	}
	return marshalDecision(decisionOf(res, chosen))
}

func decisionOf(res *framework.Result, chosen string) decision {
	d := decision{Scorers: res.Scorers, Filtered: res.Filtered, Considered: res.Considered, Chosen: chosen}
	for _, c := range res.Ranked {
		dc := decisionCandidate{Pod: c.Endpoint.Key, Total: round(c.Total), Scores: map[string]float64{}}
		for i, s := range c.Scores {
			dc.Scores[res.Scorers[i].Name] = round(s)
		}
		d.Candidates = append(d.Candidates, dc)
	}
	return d
}

func marshalDecision(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func round(v float64) float64 { return float64(int64(v*1e4+0.5)) / 1e4 }
