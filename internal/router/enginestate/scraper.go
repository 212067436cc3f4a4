package enginestate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/framework"
)

// Source lists the endpoints to scrape.
type Source interface {
	AllEndpoints() []*datastore.Endpoint
}

// Options configure the scraper.
type Options struct {
	Source   Source
	Client   *http.Client
	Interval time.Duration // default 1s
	// Concurrency bounds parallel scrapes (default 100).
	Concurrency int
	Log         logr.Logger
	// OnError counts failed scrapes.
	OnError func(target string)
}

// Scraper polls engines.
type Scraper struct {
	o     Options
	mu    sync.Mutex
	prev  map[string]sample // last histogram totals per endpoint
	ready chan struct{}
	once  sync.Once
}

// New returns a scraper.
func New(o Options) *Scraper {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 100
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	return &Scraper{o: o, prev: map[string]sample{}, ready: make(chan struct{})}
}

// Ready is closed after the first full pass.
func (s *Scraper) Ready() <-chan struct{} { return s.ready }

// Run scrapes until ctx ends.
func (s *Scraper) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		s.ScrapeOnce(ctx)
		s.once.Do(func() { close(s.ready) })
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ScrapeOnce scrapes every endpoint once, at most Concurrency at a time.
func (s *Scraper) ScrapeOnce(ctx context.Context) {
	eps := s.o.Source.AllEndpoints()
	sem := make(chan struct{}, s.o.Concurrency)
	var wg sync.WaitGroup
	live := make(map[string]bool, len(eps))
	for _, ep := range eps {
		live[ep.Key] = true
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			s.scrape(ctx, ep)
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for k := range s.prev {
		if !live[k] {
			delete(s.prev, k)
		}
	}
	s.mu.Unlock()
}

func (s *Scraper) scrape(ctx context.Context, ep *datastore.Endpoint) {
	n := vllmNames
	if ep.Engine == "SGLang" {
		n = sglangNames
	}
	// What the router had sent and seen end when it asked: the sample
	// includes those requests, later ones are the scorers' to add.
	_, done, sent := ep.Counts()
	body, err := s.get(ctx, ep.Address, "/metrics")
	at := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			s.fail(ep, "metrics", err)
		}
		return
	}
	cur := parseMetrics(body, n)
	models, err := s.models(ctx, ep.Address)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(ep, "models", err)
		}
		return
	}
	old := ep.Metrics()
	m := &framework.Metrics{Waiting: cur.waiting, Running: cur.running, KVCacheUsage: cur.kv, Models: models, Scraped: true,
		TTFT: old.TTFT, TPOT: old.TPOT, LatencyAt: old.LatencyAt, LatencySamples: old.LatencySamples, At: at, Interval: s.o.Interval, Sent: sent, Done: done}
	s.mu.Lock()
	prev, had := s.prev[ep.Key]
	s.prev[ep.Key] = cur
	s.mu.Unlock()
	if had {
		if v := delta(cur.ttftSum, prev.ttftSum, cur.ttftCount, prev.ttftCount); v > 0 {
			m.TTFT, m.LatencyAt = v, at
			m.LatencySamples = cur.ttftCount - prev.ttftCount
			if m.LatencySamples <= 0 { // counter reset: delta averaged the totals
				m.LatencySamples = cur.ttftCount
			}
		}
		if v := delta(cur.tpotSum, prev.tpotSum, cur.tpotN, prev.tpotN); v > 0 {
			m.TPOT, m.LatencyAt = v, at
		}
	}
	ep.SetMetrics(m)
}

// delta is the interval mean Δsum/Δcount; after a counter reset the
// current totals are used.
func delta(sum, psum, cnt, pcnt float64) float64 {
	if cnt < pcnt || sum < psum {
		if cnt > 0 {
			return sum / cnt
		}
		return 0
	}
	if cnt == pcnt {
		return 0
	}
	return (sum - psum) / (cnt - pcnt)
}

func (s *Scraper) fail(ep *datastore.Endpoint, what string, err error) {
	ep.MarkFailed()
	if s.o.OnError != nil {
		s.o.OnError(what)
	}
	s.o.Log.V(3).Info("engine scrape failed", "endpoint", ep.Key, "what", what, "err", err)
}

func (s *Scraper) get(ctx context.Context, addr, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

func (s *Scraper) models(ctx context.Context, addr string) (map[string]struct{}, error) {
	b, err := s.get(ctx, addr, "/v1/models")
	if err != nil {
		return nil, err
	}
	var l struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("decode /v1/models: %w", err)
	}
	m := make(map[string]struct{}, len(l.Data))
	for _, d := range l.Data {
		m[d.ID] = struct{}{}
	}
	return m, nil
}
