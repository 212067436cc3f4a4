package autoscaling

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// Defaults of a pod metric source (the CRD's defaults, for sources that
// name no pod settings or are absent).
const (
	DefaultMetricsPort = 8100
	DefaultMetricsPath = "/metrics"
)

// podSourceConfig tunes the engine-pod scraper.
type podSourceConfig struct {
	client *http.Client
	// timeout bounds one scrape.
	timeout time.Duration
	// window is how far back a histogram quantile looks.
	window time.Duration
	// quantile is the histogram quantile read (0.95).
	quantile float64
	// concurrency bounds parallel scrapes.
	concurrency int
}

func defaultPodSourceConfig() podSourceConfig {
	return podSourceConfig{
		client:      &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute}},
		timeout:     3 * time.Second,
		window:      time.Minute,
		quantile:    0.95,
		concurrency: 16,
	}
}

// podSource scrapes the engine pods of one scaling unit. It remembers, per
// pod, the last counter values and recent histogram snapshots, so it must
// not be shared between units.
type podSource struct {
	cfg  podSourceConfig
	mu   sync.Mutex
	pods map[types.UID]*podState
}

func newPodSource(cfg podSourceConfig) *podSource {
	return &podSource{cfg: cfg, pods: map[types.UID]*podState{}}
}

type podState struct {
	restarts int32
	series   map[string]*seriesState
}

type seriesState struct {
	lastAt  time.Time
	last    float64
	hasLast bool
	hist    []histSnapshot
}

type histSnapshot struct {
	at time.Time
	b  bucketCounts
}

type scrapeResult struct {
	fams map[string]*dto.MetricFamily
	err  error
}

var _ metricSource = &podSource{}

// podPhase is how a pod counts this cycle.
type podPhase int

const (
	podIgnored podPhase = iota // being deleted or finished: not counted
	podUnready                 // exists but carries no load yet
	podReady                   // scraped
)

// podReadyCondition reports whether the pod's Ready condition is true.
func podReadyCondition(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func restartsOf(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

// classify sorts the pods and notes restarts: a pod whose containers
// restarted since the last cycle counts as unready this cycle and its
// counter and histogram baselines start again.
func (s *podSource) classify(pods []*corev1.Pod) map[types.UID]podPhase {
	out := map[types.UID]podPhase{}
	seen := map[types.UID]bool{}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			out[p.UID] = podIgnored
			continue
		}
		seen[p.UID] = true
		restarts := restartsOf(p)
		st := s.pods[p.UID]
		restarted := false
		if st == nil {
			st = &podState{restarts: restarts, series: map[string]*seriesState{}}
			s.pods[p.UID] = st
		} else if st.restarts != restarts {
			st.restarts, st.series, restarted = restarts, map[string]*seriesState{}, true
		}
		switch {
		case restarted || p.Status.Phase != corev1.PodRunning || !podReadyCondition(p) || p.Status.PodIP == "":
			out[p.UID] = podUnready
		default:
			out[p.UID] = podReady
		}
	}
	for uid := range s.pods {
		if !seen[uid] {
			delete(s.pods, uid)
		}
	}
	return out
}

// podSpecOf fills a pod source's defaults; a request with no source at all
// reads the metric key from every pod at the default port and path.
func podSpecOf(req metricRequest) workloadv1alpha1.PodMetricSource {
	var ps workloadv1alpha1.PodMetricSource
	if req.spec.Pod != nil {
		ps = *req.spec.Pod
	}
	if ps.Name == "" {
		ps.Name = req.key
	}
	if ps.Port == 0 {
		ps.Port = DefaultMetricsPort
	}
	if ps.Uri == "" {
		ps.Uri = DefaultMetricsPath
	}
	if !strings.HasPrefix(ps.Uri, "/") {
		ps.Uri = "/" + ps.Uri
	}
	return ps
}

func (s *podSource) read(ctx context.Context, now time.Time, pods []*corev1.Pod, reqs []metricRequest) []metricReading {
	s.mu.Lock()
	defer s.mu.Unlock()
	phases := s.classify(pods)

	type plan struct {
		spec workloadv1alpha1.PodMetricSource
		pods []*corev1.Pod
		err  error
	}
	plans := make([]plan, len(reqs))
	endpoints := map[string]bool{}
	for i, req := range reqs {
		if req.spec.Prometheus != nil {
			// The cycle sends Prometheus metrics to their own source.
			plans[i].err = errors.New("a Prometheus metric reached the pod source")
			continue
		}
		ps := podSpecOf(req)
		plans[i].spec = ps
		sel := labels.Everything()
		if ps.LabelSelector != nil {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(ps.LabelSelector); err != nil {
				plans[i].err = fmt.Errorf("labelSelector: %w", err)
				continue
			}
		}
		plans[i].pods = selectPods(pods, sel)
		for _, p := range plans[i].pods {
			if phases[p.UID] != podReady {
				continue
			}
			endpoints[metricsURL(p, ps)] = true
		}
	}
	results := s.scrapeAll(ctx, endpoints)

	out := make([]metricReading, len(reqs))
	for i, req := range reqs {
		pl := plans[i]
		if pl.err != nil {
			out[i] = metricReading{err: pl.err}
			continue
		}
		r := &podReadings{}
		var lastErr error
		for _, p := range pl.pods {
			switch phases[p.UID] {
			case podIgnored:
				continue
			case podUnready:
				r.unready++
				continue
			}
			v, err := s.value(now, p.UID, req.key, pl.spec, results[metricsURL(p, pl.spec)])
			if err != nil {
				r.missing++
				lastErr = fmt.Errorf("pod %s: %w", p.Name, err)
				continue
			}
			r.values = append(r.values, v)
		}
		out[i] = metricReading{pods: r}
		if len(r.values) == 0 {
			out[i].err = lastErr
		}
	}
	return out
}

// metricsURL is where pod p serves the metrics of source ps.
func metricsURL(p *corev1.Pod, ps workloadv1alpha1.PodMetricSource) string {
	return "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(ps.Port))) + ps.Uri
}

// errWarmingUp marks a rate or window that needs one more scrape.
var errWarmingUp = errors.New("first sample, no rate yet")

// value turns one pod's scrape into the per-pod value of a metric.
func (s *podSource) value(now time.Time, uid types.UID, key string, ps workloadv1alpha1.PodMetricSource, res scrapeResult) (float64, error) {
	if res.err != nil {
		return 0, res.err
	}
	f, ok := findFamily(res.fams, ps.Name)
	if !ok {
		return 0, fmt.Errorf("no series %s", ps.Name)
	}
	kind, err := kindOf(f)
	if err != nil {
		return 0, err
	}
	st := s.pods[uid]
	skey := fmt.Sprintf("%s|%d|%s|%s", key, ps.Port, ps.Uri, ps.Name)
	ss := st.series[skey]
	if ss == nil {
		ss = &seriesState{}
		st.series[skey] = ss
	}
	switch kind {
	case kindGauge:
		return scalarOf(f)
	case kindCounter:
		v, err := scalarOf(f)
		if err != nil {
			return 0, err
		}
		prev, prevAt, had := ss.last, ss.lastAt, ss.hasLast
		ss.last, ss.lastAt, ss.hasLast = v, now, true
		switch {
		case !had:
			return 0, errWarmingUp
		case v < prev:
			return 0, fmt.Errorf("counter %s went down (engine restarted)", f.GetName())
		case !now.After(prevAt):
			return 0, errWarmingUp
		}
		return (v - prev) / now.Sub(prevAt).Seconds(), nil
	default:
		b, err := histogramOf(f)
		if err != nil {
			return 0, err
		}
		if n := len(ss.hist); n > 0 {
			if _, ok := b.delta(ss.hist[n-1].b); !ok {
				ss.hist = []histSnapshot{{at: now, b: b}}
				return 0, fmt.Errorf("histogram %s went down (engine restarted)", f.GetName())
			}
		}
		keep := ss.hist[:0]
		for _, h := range ss.hist {
			if !h.at.Before(now.Add(-s.cfg.window)) {
				keep = append(keep, h)
			}
		}
		ss.hist = append(keep, histSnapshot{at: now, b: b})
		if len(ss.hist) < 2 {
			return 0, errWarmingUp
		}
		d, ok := b.delta(ss.hist[0].b)
		if !ok {
			ss.hist = ss.hist[len(ss.hist)-1:]
			return 0, fmt.Errorf("histogram %s went down (engine restarted)", f.GetName())
		}
		return d.quantile(s.cfg.quantile), nil
	}
}

// scrapeAll fetches every endpoint once, in parallel within the configured
// concurrency.
func (s *podSource) scrapeAll(ctx context.Context, eps map[string]bool) map[string]scrapeResult {
	out := make(map[string]scrapeResult, len(eps))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(s.cfg.concurrency, 1))
	for url := range eps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fams, err := s.scrape(ctx, url)
			mu.Lock()
			out[url] = scrapeResult{fams: fams, err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (s *podSource) scrape(ctx context.Context, url string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.cfg.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	fams, err := parseExposition(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return fams, nil
}
