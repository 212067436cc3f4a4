package director

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/kvconnector"
	"github.com/kthena/kthena/internal/router/openai"
	"github.com/kthena/kthena/internal/router/scheduler"
)

// pair is a decode pod and the prefill pods of its group, best first.
type pair struct {
	group    string
	decode   framework.Candidate
	prefills []framework.Candidate
	score    float64
}

// pdRun is the state of one disaggregated request.
type pdRun struct {
	c       *call
	sched   *scheduler.Scheduler
	ms      *networkingv1alpha1.ModelServer
	req     *framework.Request
	conn    kvconnector.Connector
	byKey   map[*framework.Endpoint]*datastore.Endpoint
	prefill *framework.Result
	decode  *framework.Result
	pairs   []pair
	decider *deciderVerdict
	// chosen is the pair being tried, for the decision header.
	chosenPrefill, chosenDecode, chosenGroup string
}

// deciderVerdict is what conditional disaggregation saw.
type deciderVerdict struct {
	SkipPrefill       bool   `json:"skipPrefill"`
	DecodePod         string `json:"decodePod"`
	PromptTokens      int    `json:"promptTokens"`
	CachedTokens      int    `json:"cachedTokens"`
	MinUncachedTokens int    `json:"minUncachedTokens"`
}

// splitPD sorts a PD ModelServer's endpoints into prefill and decode pods.
// Pods without the group label cannot be paired and are left out.
func splitPD(g *networkingv1alpha1.PDGroup, eps []*datastore.Endpoint) (prefill, decode []*datastore.Endpoint) {
	ps, ds := labels.SelectorFromSet(g.PrefillLabels), labels.SelectorFromSet(g.DecodeLabels)
	for _, e := range eps {
		if _, ok := e.Labels[g.GroupKey]; !ok {
			continue
		}
		set := labels.Set(e.Labels)
		switch {
		case len(g.PrefillLabels) > 0 && ps.Matches(set):
			prefill = append(prefill, e)
		case len(g.DecodeLabels) > 0 && ds.Matches(set):
			decode = append(decode, e)
		}
	}
	return prefill, decode
}

// servePD serves a request of a ModelServer with pdGroup: the decode
// profile ranks decode pods, the decider may send the request to the best
// of them alone, else the prefill profile ranks prefill pods and each
// decode pod is paired with the best prefill pod of its group; pairs are
// tried best first until one answers.
func (d *Director) servePD(c *call, sched *scheduler.Scheduler, ms *networkingv1alpha1.ModelServer, req *framework.Request, eps []*datastore.Endpoint) error {
	g := ms.Spec.WorkloadSelector.PDGroup
	prefillEps, decodeEps := splitPD(g, eps)
	if len(decodeEps) == 0 {
		return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "decode: ModelServer %s has no ready decode pod (pods labelled %v with label %s)", req.ModelServer, g.DecodeLabels, g.GroupKey)
	}
	ctx := c.r.Context()
	run := &pdRun{c: c, sched: sched, ms: ms, req: req, conn: kvconnector.For(ms), byKey: map[*framework.Endpoint]*datastore.Endpoint{}}
	dviews, dby := viewsOf(decodeEps)
	for k, v := range dby {
		run.byKey[k] = v
	}
	all := d.sessionOf(c, ms, req.ModelServer, dviews)
	var err error
	run.decode, err = sched.Decode().Rank(ctx, req, dviews, d.recorder())
	if err != nil {
		d.setPDDecision(run)
		return openai.Errorf(http.StatusServiceUnavailable, "scheduling", "decode: no decode pod of ModelServer %s can take the request: %v", req.ModelServer, err)
	}
	d.stick(c, all, run.decode, sched.Decode().TopN())
	if run.decide(ctx, d.o.PromptLimit) {
		err = d.decodeOnly(run)
	} else {
		err = d.pairAndDisaggregate(run, prefillEps)
	}
	if err == nil {
		d.recordSession(c, c.entry.SelectedPod)
	}
	return err
}

// pairAndDisaggregate ranks the prefill pods, pairs them with the ranked
// decode pods and serves the request through the best pair that answers.
func (d *Director) pairAndDisaggregate(run *pdRun, prefillEps []*datastore.Endpoint) error {
	c, req, g := run.c, run.req, run.ms.Spec.WorkloadSelector.PDGroup
	ctx := c.r.Context()
	var err error
	if len(prefillEps) == 0 {
		d.setPDDecision(run)
		return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "prefill: ModelServer %s has no ready prefill pod (pods labelled %v with label %s)", req.ModelServer, g.PrefillLabels, g.GroupKey)
	}
	pviews, pby := viewsOf(prefillEps)
	for k, v := range pby {
		run.byKey[k] = v
	}
	run.prefill, err = run.sched.Prefill().Rank(ctx, req, pviews, d.recorder())
	if err != nil {
		d.setPDDecision(run)
		return openai.Errorf(http.StatusServiceUnavailable, "scheduling", "prefill: no prefill pod of ModelServer %s can take the request: %v", req.ModelServer, err)
	}
	run.pairs = pairUp(g.GroupKey, run.decode, run.prefill, c.stickyOutcome == "bound")
	if len(run.pairs) == 0 {
		d.setPDDecision(run)
		return openai.Errorf(http.StatusServiceUnavailable, "scheduling", "no prefill pod shares a %s group with a decode pod of ModelServer %s that can take the request", g.GroupKey, req.ModelServer)
	}
	d.countPD(run, "disaggregated")
	return d.disaggregate(run)
}

// pairUp pairs each ranked decode pod with the prefill pods of its group
// and orders the pairs by both phases' normalised scores, so that a group
// whose prefill pod is busy loses to one that is idle even when its decode
// pod ranks slightly higher. Ties keep the decode ranking; pinFirst keeps
// the first decode pod's pair first (a session's bound decode pod).
func pairUp(groupKey string, dec, pre *framework.Result, pinFirst bool) []pair {
	dw, pw := weightSum(dec.Scorers), weightSum(pre.Scorers)
	var pairs []pair
	for _, dc := range dec.Ranked {
		grp := dc.Endpoint.Labels[groupKey]
		p := pair{group: grp, decode: dc}
		for _, pc := range pre.Ranked {
			if pc.Endpoint.Labels[groupKey] == grp {
				p.prefills = append(p.prefills, pc)
			}
		}
		if len(p.prefills) == 0 {
			continue
		}
		p.score = dc.Total/dw + p.prefills[0].Total/pw
		pairs = append(pairs, p)
	}
	rest := pairs
	if pinFirst && len(pairs) > 0 && pairs[0].decode.Endpoint == dec.Ranked[0].Endpoint {
		rest = pairs[1:]
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].score > rest[j].score })
	return pairs
}

func weightSum(ws []framework.WeightedName) float64 {
	s := 0.0
	for _, w := range ws {
		s += w.Weight
	}
	if s == 0 {
		return 1
	}
	return s
}

// decide is conditional disaggregation: true when the best decode pod
// should prefill the request itself because too little of the prompt is
// left uncached there to pay for a KV transfer. SGLang decode engines
// cannot prefill, so its protocol always disaggregates.
func (r *pdRun) decide(ctx context.Context, promptLimit int) bool {
	est, minUncached := r.sched.Decider()
	exactCounter := r.sched.CachedTokens()
	if (est == nil && exactCounter == nil) || r.conn.Concurrent() || len(r.decode.Ranked) == 0 {
		return false
	}
	top := r.decode.Ranked[0].Endpoint
	textBytes := len(r.req.Prompt)
	if textBytes >= promptLimit {
		// Cut at the limit: the raw size is close to the text's.
		textBytes = max(textBytes, r.req.PromptBytes)
	}
	tokens := r.req.InputTokens
	if tokens == 0 {
		tokens = (textBytes + 3) / 4
	}
	cached := 0
	if exact, total, ok := cachedTokens(ctx, exactCounter, r.req, top); ok {
		tokens, cached = total, exact
	} else if est != nil && textBytes > 0 {
		cached = est.CachedPromptBytes(ctx, r.req, top) * tokens / textBytes
	}
	r.decider = &deciderVerdict{DecodePod: top.Key, PromptTokens: tokens, CachedTokens: cached, MinUncachedTokens: minUncached}
	r.decider.SkipPrefill = tokens-cached < minUncached
	return r.decider.SkipPrefill
}

// cachedTokens asks c, when there is one, for ep's cached prompt tokens.
func cachedTokens(ctx context.Context, c framework.CachedTokensCounter, req *framework.Request, ep *framework.Endpoint) (cached, total int, ok bool) {
	if c == nil {
		return 0, 0, false
	}
	return c.CachedPromptTokens(ctx, req, ep)
}

// decodeOnly sends the request to the decode pods alone, as an aggregated
// request, with failover across them.
func (d *Director) decodeOnly(r *pdRun) error {
	d.countPD(r, "decode_only")
	c := r.c
	segs, n := c.parsed.Splice(c.body, openai.Rewrite{Model: r.req.UpstreamModel, ForceUsage: true})
	ctx := c.r.Context()
	return d.proxy(c, func(ep *framework.Endpoint) { r.sched.PrePair(ctx, r.req, nil, ep) },
		func(chosen string) string { r.chosenDecode = chosen; return c.withSession(r.decisionJSON()) }, r.decode, r.byKey, r.ms, segs, n)
}

var errPrefillFailed = errors.New("prefill failed")

// disaggregate tries the pairs in order. Within a pair a failed prefill
// moves to the group's next prefill pod; a decode that fails before its
// first byte reached the client moves to the next pair.
func (d *Director) disaggregate(r *pdRun) error {
	c := r.c
	ctx := c.r.Context()
	pb := budgetOf(r.ms, len(r.pairs))
	injected := c.parsed.Stream && !c.parsed.IncludeUsage
	var last *attemptError
	lastPhase := "prefill"
	c.upStart = time.Now()
	attempts := 0
	for i := 0; i < pb.attempts; i++ {
		if !pb.pause(ctx, i) {
			return errBackoffCancelled
		}
		p := r.pairs[i%len(r.pairs)]
		dep := r.byKey[p.decode.Endpoint]
		if dep.Removed() && i > 0 {
			continue
		}
		r.chosenGroup, r.chosenDecode = p.group, dep.Key
		c.entry.SelectedPod = dep.Key
		var ae *attemptError
		var phase string
		if r.conn.Concurrent() {
			phase, ae = d.concurrentPair(r, p, dep, pb.timeout, injected, &attempts)
		} else {
			phase, ae = d.sequentialPair(r, p, dep, pb.timeout, injected, &attempts)
		}
		if ae == nil {
			d.count("ok")
			return nil
		}
		last, lastPhase = ae, phase
		if ctx.Err() != nil {
			return openai.Errorf(499, "client_cancelled", "client cancelled the request")
		}
		if !c.respFrom.IsZero() {
			if c.stream.on {
				d.count("error")
				return d.migrate(c, dep.Key, ae)
			}
			break // bytes reached the client
		}
		if ae.status >= 400 && ae.status < 500 && ae.status != http.StatusTooManyRequests {
			// The engine refused the request itself: another pair would too.
			return &openai.Error{Status: ae.status, Type: "upstream_" + phase + "_error", Origin: "upstream",
				Message: fmt.Sprintf("%s: model %q: pod %s: %s", phase, c.parsed.Model, r.podOf(phase), ae.msg)}
		}
		d.count("failover")
	}
	d.count("error")
	if last == nil {
		return openai.Errorf(http.StatusServiceUnavailable, "pod_discovery", "no prefill/decode pair left to try")
	}
	if !c.respFrom.IsZero() {
		c.entry.ErrorOrigin = "upstream"
		return &openai.Error{Status: c.entry.StatusCode, Type: "upstream_stream", Message: "decode: " + last.msg, Origin: "upstream"}
	}
	status := http.StatusBadGateway
	if last.timeout {
		status = http.StatusGatewayTimeout
	}
	return &openai.Error{Status: status, Type: "upstream_" + lastPhase + "_error", Origin: "upstream",
		Message: fmt.Sprintf("%s: model %q: %d attempt(s) failed; last on pod %s: %s", lastPhase, c.parsed.Model, attempts, r.podOf(lastPhase), last.msg)}
}

func (r *pdRun) podOf(phase string) string {
	if phase == "prefill" {
		return r.chosenPrefill
	}
	return r.chosenDecode
}

// sequentialPair runs prefill then decode (http, lmcache, nixl, mooncake).
// It returns the phase that failed.
func (d *Director) sequentialPair(r *pdRun, p pair, dep *datastore.Endpoint, timeout time.Duration, injected bool, attempts *int) (string, *attemptError) {
	c := r.c
	ctx := c.r.Context()
	pb := budgetOf(r.ms, len(p.prefills))
	var resp []byte
	var last *attemptError
	var pre *datastore.Endpoint
	for j := 0; j < pb.attempts; j++ {
		if !pb.pause(ctx, j) {
			return "prefill", &attemptError{msg: "client went away during retry backoff"}
		}
		pc := p.prefills[j%len(p.prefills)]
		pre = r.byKey[pc.Endpoint]
		if pre.Removed() && j > 0 {
			continue
		}
		r.chosenPrefill = pre.Key
		c.entry.PrefillPod = pre.Key
		r.sched.PrePair(ctx, r.req, pc.Endpoint, p.decode.Endpoint)
		*attempts++
		c.entry.UpstreamAttempts = *attempts
		rw := r.conn.Prefill(kvconnector.PairFor(hostOf(pre.Address), pre.Labels))
		rw.Model = r.req.UpstreamModel
		segs, n := c.parsed.Splice(c.body, rw)
		resp, last = d.timedPrefill(r, pre, d.engineTarget(c, pre), segs, n, timeout)
		if last == nil {
			break
		}
		if ctx.Err() != nil || (last.status >= 400 && last.status < 500 && last.status != http.StatusTooManyRequests) {
			return "prefill", last
		}
		if last.connect {
			pre.MarkFailed()
		}
		d.count("failover")
	}
	if last != nil {
		return "prefill", last
	}
	rw, err := r.conn.Decode(kvconnector.PairFor(hostOf(pre.Address), pre.Labels), resp)
	if err != nil {
		return "prefill", &attemptError{msg: fmt.Sprintf("%s connector: %v", r.conn.Name(), err)}
	}
	rw.Model, rw.ForceUsage = r.req.UpstreamModel, true
	segs, n := c.parsed.Splice(c.body, rw)
	*attempts++
	c.entry.UpstreamAttempts = *attempts
	return "decode", d.timedDecode(ctx, r, dep, segs, n, timeout, injected)
}

// concurrentPair runs SGLang's bootstrap exchange: prefill and decode at
// once, sharing a room; a prefill failure before the decode answered
// cancels the decode (and is retried on the group's next prefill pod), a
// decode failure cancels the prefill.
func (d *Director) concurrentPair(r *pdRun, p pair, dep *datastore.Endpoint, timeout time.Duration, injected bool, attempts *int) (string, *attemptError) {
	c := r.c
	ctx := c.r.Context()
	pb := budgetOf(r.ms, len(p.prefills))
	var last *attemptError
	phase := "prefill"
	for j := 0; j < pb.attempts; j++ {
		if !pb.pause(ctx, j) {
			return "prefill", &attemptError{msg: "client went away during retry backoff"}
		}
		pc := p.prefills[j%len(p.prefills)]
		pre := r.byKey[pc.Endpoint]
		if pre.Removed() && j > 0 {
			continue
		}
		r.chosenPrefill = pre.Key
		c.entry.PrefillPod = pre.Key
		r.sched.PrePair(ctx, r.req, pc.Endpoint, p.decode.Endpoint)
		*attempts += 2
		c.entry.UpstreamAttempts = *attempts
		pair := kvconnector.PairFor(hostOf(pre.Address), pre.Labels)
		pair.Room = rand.Int64()
		prw := r.conn.Prefill(pair)
		prw.Model = r.req.UpstreamModel
		psegs, pn := c.parsed.Splice(c.body, prw)
		drw, err := r.conn.Decode(pair, nil)
		if err != nil {
			return "decode", &attemptError{msg: err.Error()}
		}
		drw.Model, drw.ForceUsage = r.req.UpstreamModel, true
		dsegs, dn := c.parsed.Splice(c.body, drw)

		pctx, pcancel := context.WithCancelCause(ctx)
		dctx, dcancel := context.WithCancelCause(ctx)
		done := make(chan *attemptError, 1)
		go func() {
			_, ae := d.timedPrefillCtx(pctx, r, pre, d.engineTarget(c, pre), psegs, pn, timeout)
			if ae != nil && pctx.Err() == nil {
				dcancel(fmt.Errorf("%w on pod %s: %s", errPrefillFailed, pre.Key, ae.msg))
			}
			done <- ae
		}()
		dae := d.timedDecode(dctx, r, dep, dsegs, dn, timeout, injected)
		if dae != nil {
			pcancel(errors.New("decode failed"))
		}
		pae := <-done
		pcancel(nil)
		dcancel(nil)
		if dae == nil {
			return "decode", nil
		}
		if ctx.Err() != nil || !c.respFrom.IsZero() {
			return "decode", dae
		}
		if errors.Is(context.Cause(dctx), errPrefillFailed) && pae != nil {
			last, phase = pae, "prefill"
			if pae.connect {
				pre.MarkFailed()
			}
			d.count("failover")
			continue // next prefill pod of the group, same decode pod
		}
		return "decode", dae
	}
	return phase, last
}

func (d *Director) timedPrefill(r *pdRun, ep *datastore.Endpoint, up target, segs [][]byte, n int, timeout time.Duration) ([]byte, *attemptError) {
	return d.timedPrefillCtx(r.c.r.Context(), r, ep, up, segs, n, timeout)
}

func (d *Director) timedPrefillCtx(ctx context.Context, r *pdRun, ep *datastore.Endpoint, up target, segs [][]byte, n int, timeout time.Duration) ([]byte, *attemptError) {
	release := ep.Acquire()
	defer release()
	start := time.Now()
	body, ae := d.exchange(ctx, r.c, up, segs, n, timeout)
	if ae == nil {
		took := time.Since(start)
		r.c.entry.DurationPrefill = float64(took.Microseconds()) / 1000
		if m := d.o.Metrics; m != nil {
			m.PrefillDuration.WithLabelValues(r.req.Model).Observe(took.Seconds())
		}
	}
	return body, ae
}

func (d *Director) timedDecode(ctx context.Context, r *pdRun, ep *datastore.Endpoint, segs [][]byte, n int, timeout time.Duration, injected bool) *attemptError {
	release := ep.Acquire()
	defer release()
	if r.c.decision {
		r.c.w.Header().Set(DecisionHeader, r.c.withSession(r.decisionJSON()))
	}
	start := time.Now()
	ae := d.send(ctx, r.c, d.engineTarget(r.c, ep), segs, n, timeout, injected)
	if ae == nil {
		if m := d.o.Metrics; m != nil {
			m.DecodeDuration.WithLabelValues(r.req.Model).Observe(time.Since(start).Seconds())
		}
	}
	return ae
}

func (d *Director) countPD(r *pdRun, mode string) {
	if m := d.o.Metrics; m != nil {
		m.PDRequests.WithLabelValues(r.req.Model, mode).Inc()
	}
}

func (d *Director) setPDDecision(r *pdRun) {
	if r.c.decision {
		r.c.w.Header().Set(DecisionHeader, r.c.withSession(r.decisionJSON()))
	}
}

// hostOf is the host part of an endpoint address.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

type pdDecision struct {
	Mode      string          `json:"mode"`
	Connector string          `json:"connector"`
	Pair      pdPair          `json:"pair"`
	Decider   *deciderVerdict `json:"decider,omitempty"`
	Pairs     []pdPairScore   `json:"pairs,omitempty"`
	Prefill   *decision       `json:"prefill,omitempty"`
	Decode    *decision       `json:"decode,omitempty"`
}

type pdPair struct {
	Prefill string `json:"prefill,omitempty"`
	Decode  string `json:"decode,omitempty"`
	Group   string `json:"group,omitempty"`
}

type pdPairScore struct {
	pdPair
	Score float64 `json:"score"`
}

func (r *pdRun) decisionJSON() string {
	out := pdDecision{Mode: "pd", Connector: r.conn.Name(), Decider: r.decider,
		Pair: pdPair{Prefill: r.chosenPrefill, Decode: r.chosenDecode, Group: r.chosenGroup}}
	if r.decider != nil && r.decider.SkipPrefill {
		out.Pair.Prefill = ""
		if r.chosenDecode != "" {
			if ep := findEndpoint(r.byKey, r.chosenDecode); ep != nil {
				out.Pair.Group = ep.Labels[r.ms.Spec.WorkloadSelector.PDGroup.GroupKey]
			}
		}
	}
	for _, p := range r.pairs {
		out.Pairs = append(out.Pairs, pdPairScore{pdPair{Prefill: p.prefills[0].Endpoint.Key, Decode: p.decode.Endpoint.Key, Group: p.group}, round(p.score)})
	}
	if r.prefill != nil {
		dp := decisionOf(r.prefill, r.chosenPrefill)
		out.Prefill = &dp
	}
	if r.decode != nil {
		dd := decisionOf(r.decode, r.chosenDecode)
		out.Decode = &dd
	}
	return marshalDecision(out)
}

func findEndpoint(m map[*framework.Endpoint]*datastore.Endpoint, key string) *datastore.Endpoint {
	for _, e := range m {
		if e.Key == key {
			return e
		}
	}
	return nil
}
