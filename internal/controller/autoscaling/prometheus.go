package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// DefaultPrometheusTimeout bounds one instant query (upstream's value).
const DefaultPrometheusTimeout = 3 * time.Second

// promQuerier is the part of the Prometheus HTTP API the source uses; the
// official client implements it.
type promQuerier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, promv1.Infos, error)
}

// promClients holds one API client per Prometheus server, shared by every
// policy, so connections to a server are reused across cycles. Entries are
// never dropped: a controller sees few distinct servers.
type promClients struct {
	timeout time.Duration
	rt      http.RoundTripper
	mu      sync.Mutex
	byURL   map[string]promQuerier
	// newClient builds a client; tests replace it.
	newClient func(serverURL string) (promQuerier, error)
}

func newPromClients() *promClients {
	pc := &promClients{
		timeout: DefaultPrometheusTimeout,
		rt: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 2 * time.Second,
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     time.Minute,
		},
		byURL: map[string]promQuerier{},
	}
	pc.newClient = func(serverURL string) (promQuerier, error) {
		c, err := promapi.NewClient(promapi.Config{Address: serverURL, RoundTripper: pc.rt})
		if err != nil {
			return nil, err
		}
		return promv1.NewAPI(c), nil
	}
	return pc
}

// client returns the cached client of serverURL, building it on first use.
func (pc *promClients) client(serverURL string) (promQuerier, error) {
	if err := validateServerURL(serverURL); err != nil {
		return nil, err
	}
	key := strings.TrimRight(serverURL, "/")
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if c := pc.byURL[key]; c != nil {
		return c, nil
	}
	c, err := pc.newClient(key)
	if err != nil {
		return nil, fmt.Errorf("serverURL %q: %w", serverURL, err)
	}
	pc.byURL[key] = c
	return c, nil
}

// validateServerURL accepts an absolute http or https URL with a host. The
// CRD's format: uri only asks for something net/url parses (ftp://x and
// prometheus:9090 pass), so the rest is checked and reported here.
func validateServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("serverURL %q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("serverURL %q must start with http:// or https://", s)
	}
	if u.Host == "" {
		return fmt.Errorf("serverURL %q has no host", s)
	}
	return nil
}

// promKey identifies one query, the unit of caching within a cycle and of
// summing across the targets of a heterogeneous policy.
func promKey(ps *workloadv1alpha1.PrometheusMetricSource) string {
	return strings.TrimRight(ps.ServerURL, "/") + "\n" + ps.Query
}

// promSource reads metricSources[].prometheus for one cycle: each distinct
// (serverURL, query) is queried once however many targets or roles name it,
// and a server that could not be reached is not asked again in the cycle,
// so a dead server costs one timeout per cycle, not one per query.
type promSource struct {
	clients *promClients
	log     logr.Logger
	mu      sync.Mutex
	results map[string]promResult
	down    map[string]error
}

type promResult struct {
	value float64
	err   error
}

var _ metricSource = &promSource{}

func newPromSource(clients *promClients, log logr.Logger) *promSource {
	return &promSource{clients: clients, log: log, results: map[string]promResult{}, down: map[string]error{}}
}

// read answers Prometheus requests with one whole-target value each; pods
// are not used.
func (s *promSource) read(ctx context.Context, now time.Time, _ []*corev1.Pod, reqs []metricRequest) []metricReading {
	out := make([]metricReading, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		ps := req.spec.Prometheus
		if ps == nil {
			out[i] = metricReading{err: errors.New("not a Prometheus metric source")}
			continue
		}
		out[i].external = promKey(ps)
		s.mu.Lock()
		_, cached := s.results[out[i].external]
		if !cached {
			// Claim the query so that a duplicate in reqs waits for it below
			// rather than running it again.
			s.results[out[i].external] = promResult{err: errors.New("query in flight")}
		}
		s.mu.Unlock()
		if cached {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := s.query(ctx, now, ps)
			s.mu.Lock()
			s.results[promKey(ps)] = res
			s.mu.Unlock()
		}()
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range out {
		if out[i].external == "" {
			continue
		}
		res := s.results[out[i].external]
		if res.err != nil {
			out[i].err = res.err
			continue
		}
		v := res.value
		out[i].total = &v
	}
	return out
}

// query runs one instant query at now and checks its answer.
func (s *promSource) query(ctx context.Context, now time.Time, ps *workloadv1alpha1.PrometheusMetricSource) promResult {
	where := fmt.Sprintf("prometheus %s, query %q", ps.ServerURL, ps.Query)
	server := strings.TrimRight(ps.ServerURL, "/")
	s.mu.Lock()
	downErr := s.down[server]
	s.mu.Unlock()
	if downErr != nil {
		return promResult{err: fmt.Errorf("%s: %w", where, downErr)}
	}
	c, err := s.clients.client(ps.ServerURL)
	if err != nil {
		return promResult{err: fmt.Errorf("prometheus: %w", err)}
	}
	qctx, cancel := context.WithTimeout(ctx, s.clients.timeout)
	defer cancel()
	// The timeout is also sent to the server, so that it abandons a query
	// nobody waits for any more.
	val, warnings, _, err := c.Query(qctx, ps.Query, now, promv1.WithTimeout(s.clients.timeout))
	if len(warnings) > 0 {
		s.log.V(1).Info("prometheus query warnings", "server", ps.ServerURL, "query", ps.Query, "warnings", []string(warnings))
	}
	if err != nil {
		var apiErr *promv1.Error
		if !errors.As(err, &apiErr) {
			// Not an answer from the server: unreachable, timed out, or not
			// Prometheus at all. Later queries to it this cycle fail at once.
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %s", s.clients.timeout)
			}
			s.mu.Lock()
			s.down[server] = err
			s.mu.Unlock()
		}
		return promResult{err: fmt.Errorf("%s: %w", where, err)}
	}
	v, err := promValue(val)
	if err != nil {
		return promResult{err: fmt.Errorf("%s: %w", where, err)}
	}
	return promResult{value: v}
}

// promValue is the one value of an instant query's answer: a scalar, or a
// vector of exactly one sample, finite and not negative. Anything else is
// ambiguous (several series, a range) or unusable (no series, NaN), and a
// guess could scale the target wrongly.
func promValue(v model.Value) (float64, error) {
	var f float64
	switch r := v.(type) {
	case *model.Scalar:
		if r == nil {
			return 0, errors.New("empty scalar")
		}
		f = float64(r.Value)
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, errors.New("no series (the query matched nothing)")
		case 1:
			f = float64(r[0].Value)
		default:
			return 0, fmt.Errorf("%d series, want one (aggregate them, for example with sum())", len(r))
		}
	case model.Matrix:
		return 0, errors.New("a range vector, want a scalar or an instant vector (drop the [range] selector)")
	case nil:
		return 0, errors.New("no result")
	default:
		return 0, fmt.Errorf("a %s, want a scalar or an instant vector", v.Type())
	}
	switch {
	case math.IsNaN(f):
		return 0, errors.New("value is NaN")
	case math.IsInf(f, 0):
		return 0, fmt.Errorf("value is %v", f)
	case f < 0:
		return 0, fmt.Errorf("value %v is negative", f)
	}
	return f, nil
}

// splitSource sends each request to the source of its kind and keeps the
// order of the readings.
type splitSource struct {
	pod, prom metricSource
}

func (s splitSource) read(ctx context.Context, now time.Time, pods []*corev1.Pod, reqs []metricRequest) []metricReading {
	var podReqs, promReqs []metricRequest
	var podIdx, promIdx []int
	for i, r := range reqs {
		if r.spec.Prometheus != nil {
			promReqs, promIdx = append(promReqs, r), append(promIdx, i)
		} else {
			podReqs, podIdx = append(podReqs, r), append(podIdx, i)
		}
	}
	out := make([]metricReading, len(reqs))
	if len(promReqs) > 0 {
		for j, rd := range s.prom.read(ctx, now, nil, promReqs) {
			out[promIdx[j]] = rd
		}
	}
	if len(podReqs) > 0 {
		for j, rd := range s.pod.read(ctx, now, pods, podReqs) {
			out[podIdx[j]] = rd
		}
	}
	return out
}
