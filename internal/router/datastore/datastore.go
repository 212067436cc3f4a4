// Package datastore holds what the router knows: ModelRoutes, ModelServers,
// ready pods, and for every pod selected by a ModelServer an endpoint with
// its live engine state and in-flight count. Providers (Kubernetes, file)
// write into it; the director and the scraper read from it.
package datastore

import (
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/labels"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/framework"
)

// Pod is a ready engine instance.
type Pod struct {
	Namespace, Name string
	IP              string
	// Port overrides the ModelServer's workload port when > 0 (file
	// provider endpoints may carry their own port).
	Port   int32
	Labels map[string]string
}

// Key is namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Endpoint is a pod selected by a ModelServer, with live state.
type Endpoint struct {
	Key     string
	Address string
	Labels  map[string]string
	Engine  string
	// Servers are the ModelServers (namespace/name) selecting this pod.
	Servers []string

	metrics atomic.Pointer[framework.Metrics]
	load    *load // shared with the endpoint's successors
	failed  atomic.Bool
	removed atomic.Bool
}

// load counts the requests the router sent to an endpoint and those that
// ended: the in-flight count is their difference, and the scraper records
// both with each sample so that scorers know what changed since.
type load struct {
	sent, done atomic.Uint64
}

var emptyMetrics = &framework.Metrics{}

// Metrics returns the last scraped state (never nil).
func (e *Endpoint) Metrics() *framework.Metrics {
	if m := e.metrics.Load(); m != nil {
		return m
	}
	return emptyMetrics
}

// SetMetrics stores a scraped state and clears the failed mark.
func (e *Endpoint) SetMetrics(m *framework.Metrics) {
	e.metrics.Store(m)
	e.failed.Store(false)
}

// MarkFailed excludes the endpoint from scheduling until a scrape succeeds.
func (e *Endpoint) MarkFailed() { e.failed.Store(true) }

// Failed reports whether the endpoint is excluded.
func (e *Endpoint) Failed() bool { return e.failed.Load() }

// Removed reports whether the endpoint has left the store.
func (e *Endpoint) Removed() bool { return e.removed.Load() }

// InFlight is the number of requests this router has in flight to it.
func (e *Endpoint) InFlight() int64 {
	n, _, _ := e.Counts()
	return n
}

// Counts returns how many requests the router has sent to the endpoint and
// seen end (in that order of reading: done first, so that sent ≥ done). The
// first result is sent − done.
func (e *Endpoint) Counts() (inFlight int64, done, sent uint64) {
	done = e.load.done.Load()
	sent = e.load.sent.Load()
	return int64(sent - done), done, sent
}

// Acquire counts one more request in flight; call the returned func once
// when it ends.
func (e *Endpoint) Acquire() func() {
	e.load.sent.Add(1)
	return func() { e.load.done.Add(1) }
}

// View returns the scheduler's view of the endpoint at this instant.
func (e *Endpoint) View(dst *framework.Endpoint) {
	n, done, sent := e.Counts()
	*dst = framework.Endpoint{Key: e.Key, Address: e.Address, Labels: e.Labels, Engine: e.Engine, Metrics: e.Metrics(), InFlight: n, Sent: sent, Done: done}
}

type routeEntry struct {
	route *networkingv1alpha1.ModelRoute
	seq   uint64
}

// Store is safe for concurrent use.
type Store struct {
	mu        sync.RWMutex
	seq       uint64
	routes    map[string]routeEntry
	byModel   map[string][]*networkingv1alpha1.ModelRoute
	byLoRA    map[string][]*networkingv1alpha1.ModelRoute
	servers   map[string]*networkingv1alpha1.ModelServer
	pods      map[string]*Pod
	endpoints map[string]*Endpoint
	bySrv     map[string][]*Endpoint
	removed   []func(key string)
	changed   []func()
	ext       providers
}

// New returns an empty store.
func New() *Store {
	return &Store{
		routes: map[string]routeEntry{}, byModel: map[string][]*networkingv1alpha1.ModelRoute{},
		byLoRA: map[string][]*networkingv1alpha1.ModelRoute{}, servers: map[string]*networkingv1alpha1.ModelServer{},
		pods: map[string]*Pod{}, endpoints: map[string]*Endpoint{}, bySrv: map[string][]*Endpoint{},
	}
}

// OnEndpointRemoved registers a callback run (outside the lock) when an
// endpoint leaves.
func (s *Store) OnEndpointRemoved(f func(key string)) {
	s.mu.Lock()
	s.removed = append(s.removed, f)
	s.mu.Unlock()
}

// OnEndpointsChanged registers a callback run (outside the lock) after
// every change that may have changed some ModelServer's endpoints.
func (s *Store) OnEndpointsChanged(f func()) {
	s.mu.Lock()
	s.changed = append(s.changed, f)
	s.mu.Unlock()
}

func key(ns, name string) string { return ns + "/" + name }

// UpsertRoute adds or replaces a ModelRoute.
func (s *Store) UpsertRoute(r *networkingv1alpha1.ModelRoute) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(r.Namespace, r.Name)
	e, ok := s.routes[k]
	if !ok {
		s.seq++
		e.seq = s.seq
	}
	e.route = r
	s.routes[k] = e
	s.reindexRoutes()
}

// DeleteRoute removes a ModelRoute.
func (s *Store) DeleteRoute(ns, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.routes, key(ns, name))
	s.reindexRoutes()
}

func (s *Store) reindexRoutes() {
	entries := make([]routeEntry, 0, len(s.routes))
	for _, e := range s.routes {
		entries = append(entries, e)
	}
	// Oldest first: creation time, then arrival order, then name.
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i].route, entries[j].route
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if entries[i].seq != entries[j].seq {
			return entries[i].seq < entries[j].seq
		}
		return key(a.Namespace, a.Name) < key(b.Namespace, b.Name)
	})
	byModel := map[string][]*networkingv1alpha1.ModelRoute{}
	byLoRA := map[string][]*networkingv1alpha1.ModelRoute{}
	for _, e := range entries {
		r := e.route
		if r.Spec.ModelName != "" {
			byModel[r.Spec.ModelName] = append(byModel[r.Spec.ModelName], r)
		}
		for _, l := range r.Spec.LoraAdapters {
			byLoRA[l] = append(byLoRA[l], r)
		}
	}
	s.byModel, s.byLoRA = byModel, byLoRA
}

// Routes returns the routes for a model name, oldest first, and whether the
// name is a LoRA adapter (used only when no route has it as modelName).
func (s *Store) Routes(model string) ([]*networkingv1alpha1.ModelRoute, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if rs := s.byModel[model]; len(rs) > 0 {
		return rs, false
	}
	return s.byLoRA[model], true
}

// ModelNames lists every modelName and LoRA adapter that routes expose.
func (s *Store) ModelNames() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.byModel)+len(s.byLoRA))
	for m := range s.byModel {
		out = append(out, m)
	}
	for m := range s.byLoRA {
		if _, dup := s.byModel[m]; !dup {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// AllRoutes returns every route (for debugging).
func (s *Store) AllRoutes() []*networkingv1alpha1.ModelRoute {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*networkingv1alpha1.ModelRoute, 0, len(s.routes))
	for _, e := range s.routes {
		out = append(out, e.route)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i].Namespace, out[i].Name) < key(out[j].Namespace, out[j].Name) })
	return out
}

// UpsertServer adds or replaces a ModelServer.
func (s *Store) UpsertServer(ms *networkingv1alpha1.ModelServer) {
	s.mu.Lock()
	s.servers[key(ms.Namespace, ms.Name)] = ms
	gone := s.rebuild()
	s.mu.Unlock()
	s.notify(gone)
}

// DeleteServer removes a ModelServer.
func (s *Store) DeleteServer(ns, name string) {
	s.mu.Lock()
	delete(s.servers, key(ns, name))
	gone := s.rebuild()
	s.mu.Unlock()
	s.notify(gone)
}

// Server returns a ModelServer by namespace/name.
func (s *Store) Server(nsName string) *networkingv1alpha1.ModelServer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.servers[nsName]
}

// AllServers returns every server (for debugging).
func (s *Store) AllServers() []*networkingv1alpha1.ModelServer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*networkingv1alpha1.ModelServer, 0, len(s.servers))
	for _, m := range s.servers {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return key(out[i].Namespace, out[i].Name) < key(out[j].Namespace, out[j].Name) })
	return out
}

// UpsertPod adds or replaces a ready pod.
func (s *Store) UpsertPod(p *Pod) {
	s.mu.Lock()
	s.pods[p.Key()] = p
	gone := s.rebuild()
	s.mu.Unlock()
	s.notify(gone)
}

// DeletePod removes a pod (it left or stopped being ready).
func (s *Store) DeletePod(ns, name string) {
	s.mu.Lock()
	if _, ok := s.pods[key(ns, name)]; !ok {
		s.mu.Unlock()
		return
	}
	delete(s.pods, key(ns, name))
	gone := s.rebuild()
	s.mu.Unlock()
	s.notify(gone)
}

// Endpoints returns the usable endpoints of a ModelServer (sorted by key;
// endpoints marked failed are left out) and how many it has in total.
func (s *Store) Endpoints(server string, dst []*Endpoint) ([]*Endpoint, int) {
	s.mu.RLock()
	all := s.bySrv[server]
	s.mu.RUnlock()
	for _, e := range all {
		if !e.Failed() {
			dst = append(dst, e)
		}
	}
	return dst, len(all)
}

// AllEndpoints returns every endpoint, sorted by key.
func (s *Store) AllEndpoints() []*Endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Endpoint, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// rebuild recomputes server → endpoints; it keeps Endpoint objects (and
// their state) of pods whose address did not change. It returns removed
// endpoint keys.
func (s *Store) rebuild() []string {
	type sel struct {
		key string
		ms  *networkingv1alpha1.ModelServer
		sel labels.Selector
	}
	sels := make([]sel, 0, len(s.servers))
	for k, ms := range s.servers {
		if ms.Spec.WorkloadSelector == nil || len(ms.Spec.WorkloadSelector.MatchLabels) == 0 {
			continue // selects nothing (upstream's webhook requires labels)
		}
		sels = append(sels, sel{k, ms, labels.SelectorFromSet(ms.Spec.WorkloadSelector.MatchLabels)})
	}
	sort.Slice(sels, func(i, j int) bool { return sels[i].key < sels[j].key })
	next := map[string]*Endpoint{}
	bySrv := map[string][]*Endpoint{}
	for pk, p := range s.pods {
		if p.IP == "" {
			continue
		}
		var servers []string
		var first *networkingv1alpha1.ModelServer
		for _, sl := range sels {
			if sl.ms.Namespace != p.Namespace || !sl.sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			servers = append(servers, sl.key)
			if first == nil {
				first = sl.ms
			}
		}
		if first == nil {
			continue
		}
		port := p.Port
		if port <= 0 {
			port = first.Spec.WorkloadPort.Port
		}
		if port <= 0 {
			port = 8000
			if first.Spec.InferenceEngine == networkingv1alpha1.SGLang {
				port = 30000
			}
		}
		addr := net.JoinHostPort(p.IP, strconv.Itoa(int(port)))
		ep := s.endpoints[pk]
		engine := string(first.Spec.InferenceEngine)
		if ep == nil || ep.Address != addr || ep.Engine != engine || !maps.Equal(ep.Labels, p.Labels) || !slices.Equal(ep.Servers, servers) {
			// Endpoints are immutable apart from their atomics; a changed
			// pod gets a new one that keeps the scraped state.
			n := &Endpoint{Key: pk, Address: addr, Engine: engine, Labels: p.Labels, Servers: servers}
			if ep != nil && ep.Address == addr {
				n.metrics.Store(ep.metrics.Load())
				n.load = ep.load
			} else {
				n.load = new(load)
			}
			ep = n
		}
		next[pk] = ep
		for _, sk := range servers {
			bySrv[sk] = append(bySrv[sk], ep)
		}
	}
	for _, eps := range bySrv {
		sort.Slice(eps, func(i, j int) bool { return eps[i].Key < eps[j].Key })
	}
	var gone []string
	for k, old := range s.endpoints {
		n, ok := next[k]
		if n != old {
			old.removed.Store(true)
		}
		if !ok || n.Address != old.Address {
			gone = append(gone, k)
		}
	}
	s.endpoints, s.bySrv = next, bySrv
	return gone
}

func (s *Store) notify(gone []string) {
	s.mu.RLock()
	fs, cs := s.removed, s.changed
	s.mu.RUnlock()
	for _, k := range gone {
		for _, f := range fs {
			f(k)
		}
	}
	for _, f := range cs {
		f()
	}
}
