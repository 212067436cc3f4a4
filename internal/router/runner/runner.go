// Package runner wires the router: flags → options → configuration →
// providers, scraper, scheduler, director → listeners, with configuration
// hot reload and graceful drain.
package runner

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kthena/kthena/internal/router/accesslog"
	"github.com/kthena/kthena/internal/router/auth"
	"github.com/kthena/kthena/internal/router/coldstart"
	"github.com/kthena/kthena/internal/router/config"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/debug"
	"github.com/kthena/kthena/internal/router/director"
	"github.com/kthena/kthena/internal/router/enginestate"
	"github.com/kthena/kthena/internal/router/fairness"
	"github.com/kthena/kthena/internal/router/framework"
	"github.com/kthena/kthena/internal/router/handlers"
	"github.com/kthena/kthena/internal/router/heapfloor"
	"github.com/kthena/kthena/internal/router/metrics"
	"github.com/kthena/kthena/internal/router/plugins"
	"github.com/kthena/kthena/internal/router/plugins/scorer/prefixcache"
	"github.com/kthena/kthena/internal/router/provider/file"
	"github.com/kthena/kthena/internal/router/ratelimit"
	"github.com/kthena/kthena/internal/router/redispool"
	"github.com/kthena/kthena/internal/router/scheduler"
	"github.com/kthena/kthena/internal/router/session"
	"github.com/kthena/kthena/internal/router/upstream"
	"github.com/kthena/kthena/internal/tokenizer"
)

// Options are the process settings.
type Options struct {
	// Addr, MetricsAddr, DebugAddr are listen addresses ("" disables
	// metrics/debug).
	Addr, MetricsAddr, DebugAddr string
	ExposeMetricsOnRouterPort    bool
	TLSCert, TLSKey              string
	// ConfigFile is the router configuration; empty means the built-in
	// default.
	ConfigFile string
	// EndpointsFile selects the standalone file provider.
	EndpointsFile string
	// Kubernetes selects the Kubernetes provider (see provider/kubernetes).
	Kubernetes     bool
	ScrapeInterval time.Duration
	DrainTimeout   time.Duration
	// ShutdownDelay is how long Shutdown keeps serving, readiness failing
	// and keep-alives off, before it stops accepting.
	ShutdownDelay time.Duration
	// Listener, when set, is the router port's socket, inherited from a
	// supervisor that keeps it open across restarts (Addr is not used for
	// it). The router accepts on it only once ready: the connections that
	// queued while no router ran wait for one that knows the routes.
	Listener       net.Listener
	MaxBodyBytes   int64
	StreamIdleTime time.Duration
	// HeaderTimeout bounds reading a request's headers; BodyTimeout its
	// body (0: 30 s and 2 min).
	HeaderTimeout, BodyTimeout time.Duration
	AccessLog                  bool
	AccessLogFormat            string
	// AccessLogStages adds where each request's time went in the router
	// to its access log entry (stages_us=...).
	AccessLogStages bool
	// GCHeapFloor keeps the GC's heap goal at or above this many bytes
	// while the live heap is small (see heapfloor); 0, or GOGC set in the
	// environment, leaves the runtime's default.
	GCHeapFloor uint64
	Log         logr.Logger
	// KubernetesProvider starts the Kubernetes provider; the command sets
	// it so that standalone builds and tests need no cluster client.
	KubernetesProvider func(ctx context.Context, store *datastore.Store, log logr.Logger, synced func()) error
	// Waker asks for capacity for a ModelServer with no ready pod (the
	// autoscaler's scale-from-zero request); with it, such requests are
	// held until a pod is ready (configuration coldStart). Nil: they fail
	// at once with 503.
	Waker coldstart.Waker

	// finalize applies the port flags to the options Start works on.
	finalize func(*Options)
}

// BindFlags registers the flags on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	var port, mport, dport int
	fs.IntVar(&port, "port", 8080, "router listen port")
	fs.IntVar(&mport, "metrics-port", 9090, "dedicated /metrics port (0 disables)")
	fs.IntVar(&dport, "debug-port", 15000, "debug port bound to localhost (0 disables)")
	fs.BoolVar(&o.ExposeMetricsOnRouterPort, "expose-metrics-on-router-port", false, "also serve /metrics on the router port")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file for the router port")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS key file for the router port")
	fs.StringVar(&o.ConfigFile, "config", "", "router configuration file (upstream format); empty uses the built-in default; reloaded on change")
	fs.StringVar(&o.EndpointsFile, "endpoints-file", "", "standalone mode: YAML with ModelServer, ModelRoute and Endpoints documents; reloaded on change")
	fs.BoolVar(&o.Kubernetes, "kubernetes", false, "discover ModelServers, ModelRoutes and ready Pods from Kubernetes")
	fs.DurationVar(&o.ScrapeInterval, "scrape-interval", time.Second, "engine /metrics and /v1/models poll period")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Minute, "graceful shutdown drain time for in-flight requests")
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 0, "on shutdown, keep accepting requests this long with readiness failing and keep-alives off, so that load balancers stop sending first (use it where no preStop hook delays SIGTERM)")
	fs.Int64Var(&o.MaxBodyBytes, "max-request-body-bytes", 32<<20, "request body limit (413 above)")
	fs.DurationVar(&o.StreamIdleTime, "stream-idle-timeout", 5*time.Minute, "abort an engine response that sends nothing for this long")
	fs.DurationVar(&o.HeaderTimeout, "read-header-timeout", 30*time.Second, "close a connection whose request headers take longer to arrive")
	fs.DurationVar(&o.BodyTimeout, "read-body-timeout", 2*time.Minute, "answer 408 to a request whose body takes longer to arrive")
	fs.BoolVar(&o.AccessLog, "access-log", true, "write an access log entry per request to stdout")
	fs.StringVar(&o.AccessLogFormat, "access-log-format", "text", "access log format: text or json")
	fs.Uint64Var(&o.GCHeapFloor, "gc-heap-floor", DefaultGCHeapFloor, "collect garbage only once the heap reaches this many bytes while the live heap is under half of it (fewer collections on a small heap; 0: Go's default, GOGC=100; ignored when GOGC is set)")
	fs.BoolVar(&o.AccessLogStages, "access-log-stages", false, "add to each access log entry when the request was read, parsed, routed, scheduled, sent upstream, answered and relayed (microseconds from the handler's start)")
	var bindAddress string
	fs.StringVar(&bindAddress, "bind-address", "", "address the router and metrics ports listen on (empty: all)")
	o.Addr, o.MetricsAddr, o.DebugAddr = ":8080", ":9090", "127.0.0.1:15000"
	portsSet := func(o *Options) {
		o.Addr = net.JoinHostPort(bindAddress, strconv.Itoa(port))
		o.MetricsAddr, o.DebugAddr = "", ""
		if mport > 0 {
			o.MetricsAddr = net.JoinHostPort(bindAddress, strconv.Itoa(mport))
		}
		if dport > 0 {
			o.DebugAddr = fmt.Sprintf("127.0.0.1:%d", dport)
		}
	}
	o.finalize = portsSet
}

// DefaultGCHeapFloor is --gc-heap-floor's default: against a live heap of
// ~5 MiB, 32 MiB collects about four times less often than GOGC=100 for
// ~30 MiB more resident memory (64 MiB: ten times less often, ~90 MiB
// more, measured by the deployment bench).
const DefaultGCHeapFloor = 32 << 20

// Router is a running router.
type Router struct {
	o        Options
	Store    *datastore.Store
	Registry *prometheus.Registry
	Metrics  *metrics.Metrics
	reg      *scheduler.Registry
	handle   framework.Handle
	sched    atomic.Pointer[scheduler.Scheduler]
	affinity atomic.Pointer[session.Affinity]
	// sessionStore is the configuration affinity was built from.
	sessionStore config.SessionStoreConfig
	hold         *coldstart.Holder
	limits       *ratelimit.Limiter
	queues       *fairness.Queues
	fair         atomic.Pointer[director.Fairness]
	migration    atomic.Pointer[director.Migration]
	// auth is the authenticator of the current configuration (nil: off);
	// authCfg what it was built from, authStop stops its key refresh.
	auth       atomic.Pointer[auth.Authenticator]
	authMu     sync.Mutex
	authCfg    *config.AuthConfig
	authStop   context.CancelFunc
	coldLimits coldstart.Limits
	redis      *redispool.Pool
	cfgText    atomic.Pointer[string]
	handler    *handlers.Handler
	accessLog  *accesslog.Logger
	heapFloor  *heapfloor.Floor
	scraper    *enginestate.Scraper
	servers    []*http.Server
	lns        []net.Listener
	// fresh are the accepted connections whose first request has not
	// been read yet (http.StateNew).
	freshMu sync.Mutex
	fresh   map[net.Conn]struct{}
	synced  atomic.Bool
	wg      sync.WaitGroup
	cancel  context.CancelFunc
}

type handle struct {
	tok framework.TokenCounter
	log logr.Logger
}

func (h handle) Tokenizer() framework.TokenCounter { return h.tok }
func (h handle) Log() logr.Logger                  { return h.log }

// Start builds the router and starts serving; it returns once listeners
// are bound.
func Start(ctx context.Context, o Options) (*Router, error) {
	if o.finalize != nil {
		o.finalize(&o)
	}
	if o.Log.GetSink() == nil {
		o.Log = logr.Discard()
	}
	cfgText := config.Default
	if o.ConfigFile != "" {
		b, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("read router configuration: %w", err)
		}
		cfgText = string(b)
	}
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		return nil, err
	}
	r := &Router{o: o, Store: datastore.New(), Registry: prometheus.NewRegistry(), reg: plugins.NewRegistry(),
		redis: redispool.New(redispool.Options{Password: os.Getenv("REDIS_PASSWORD")})}
	r.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r.Metrics = metrics.New(r.Registry)
	r.limits = ratelimit.New(r.redis, r.Metrics, o.Log.WithName("ratelimit"))
	r.queues = fairness.New(fairness.Settings{}, r.Metrics)
	var tok *tokenizer.Tokenizer
	if cfg.Tokenizer != nil {
		if tok, err = tokenizer.New(cfg.Tokenizer.Encoding); err != nil {
			return nil, err
		}
		r.handle = handle{tok: tok, log: o.Log.WithName("scheduler")}
	} else {
		r.handle = handle{log: o.Log.WithName("scheduler")}
	}
	if err := r.applyConfig(cfg, cfgText); err != nil {
		return nil, err
	}
	r.Store.OnEndpointRemoved(func(k string) { r.sched.Load().EndpointRemoved(k) })
	r.Store.OnEndpointsChanged(func() { r.showEndpoints(r.sched.Load()) })
	if _, set := os.LookupEnv("GOGC"); o.GCHeapFloor > 0 && !set {
		r.heapFloor = heapfloor.Start(o.GCHeapFloor, 100)
	}

	ctx, r.cancel = context.WithCancel(ctx)
	var al *accesslog.Logger
	if o.AccessLog {
		if al, err = accesslog.New(os.Stdout, o.AccessLogFormat); err != nil {
			return nil, err
		}
		r.accessLog = al
		r.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kthena_router_access_log_dropped_total",
			Help: "Access log entries dropped because stdout did not take them fast enough."}, func() float64 { return float64(al.Dropped()) }))
	}
	var counter framework.TokenCounter
	if tok != nil {
		counter = tok
	}
	if o.Waker != nil {
		r.hold = coldstart.New(ctx, o.Waker, r.Metrics, o.Log.WithName("coldstart"), r.coldLimits)
		r.Store.OnEndpointsChanged(r.hold.Notify)
	}
	dir := director.New(director.Options{
		Store: r.Store, Scheduler: r.sched.Load, Affinity: r.affinity.Load, Transport: upstream.New(), Metrics: r.Metrics,
		AccessLog: al, Log: o.Log, Tokenizer: counter, StreamIdleTimeout: o.StreamIdleTime,
		Hold: r.hold, RateLimits: r.limits, Auth: r.auth.Load, Fairness: r.fair.Load, Migration: r.migrationLimits,
		Stages: al != nil && o.AccessLogStages,
	})
	r.scraper = enginestate.New(enginestate.Options{Source: r.Store, Interval: o.ScrapeInterval, Log: o.Log,
		OnError: func(t string) { r.Metrics.ScrapeErrors.WithLabelValues(t).Inc() }})
	r.handler = handlers.New(handlers.Options{Director: dir, Models: r.Store, MaxBodyBytes: o.MaxBodyBytes, BodyTimeout: o.BodyTimeout,
		Ready: r.ready, Auth: r.auth.Load})

	// Providers.
	switch {
	case o.EndpointsFile != "":
		p := file.New(o.EndpointsFile, r.Store, o.Log.WithName("file-provider"))
		if err := p.Load(); err != nil {
			return nil, err
		}
		r.synced.Store(true)
		r.goRun(func() {
			if err := file.Watch(ctx, o.EndpointsFile, o.Log, func() {
				if err := p.Load(); err != nil {
					o.Log.Error(err, "endpoints file reload failed; keeping the previous content")
				}
			}); err != nil {
				o.Log.Error(err, "endpoints file watch stopped")
			}
		})
	case o.Kubernetes:
		if o.KubernetesProvider == nil {
			return nil, errors.New("this build has no Kubernetes provider")
		}
		if err := o.KubernetesProvider(ctx, r.Store, o.Log.WithName("kubernetes-provider"), func() { r.synced.Store(true) }); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("no provider: set --endpoints-file or --kubernetes")
	}
	r.goRun(func() { r.scraper.Run(ctx) })
	// Capacity also grows without an answer (a scrape shows an engine's
	// queue drained, a pod arrives): look at the waiting requests often.
	r.goRun(func() { r.queues.Run(ctx, 20*time.Millisecond) })
	if o.ConfigFile != "" {
		r.goRun(func() {
			_ = file.Watch(ctx, o.ConfigFile, o.Log, func() { _ = r.ReloadConfig() })
		})
	}

	// Listeners.
	main := http.NewServeMux()
	main.Handle("/", r.handler)
	mh := promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{})
	if o.ExposeMetricsOnRouterPort {
		main.Handle("GET /metrics", mh)
	}
	if err := r.listenOn(ctx, o.Listener, o.Addr, main, o.TLSCert, o.TLSKey); err != nil {
		r.closeListeners()
		return nil, err
	}
	if o.MetricsAddr != "" {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", mh)
		if err := r.listen(o.MetricsAddr, mm, "", ""); err != nil {
			r.closeListeners()
			return nil, err
		}
	}
	if o.DebugAddr != "" {
		if err := r.listen(o.DebugAddr, debug.Handler(r.Store, func() string { return *r.cfgText.Load() }), "", ""); err != nil {
			r.closeListeners()
			return nil, err
		}
	}
	return r, nil
}

func (r *Router) goRun(f func()) {
	r.wg.Add(1)
	go func() { defer r.wg.Done(); f() }()
}

func (r *Router) listen(addr string, h http.Handler, cert, key string) error {
	return r.listenOn(context.Background(), nil, addr, h, cert, key)
}

// listenOn serves h on ln, or on a new listener on addr when ln is nil. An
// inherited ln is served once the router is ready (at most a minute later,
// so that /readyz can then say why not).
func (r *Router) listenOn(ctx context.Context, ln net.Listener, addr string, h http.Handler, cert, key string) error {
	inherited := ln != nil
	if !inherited {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
	}
	headerTimeout := r.o.HeaderTimeout
	if headerTimeout <= 0 {
		headerTimeout = 30 * time.Second
	}
	// Headers are small for OpenAI requests; 64 KiB leaves room for large
	// tokens and cookies and bounds what each idle connection can pin.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: headerTimeout, IdleTimeout: 5 * time.Minute, MaxHeaderBytes: 64 << 10,
		ConnContext: handlers.ConnContext, ConnState: r.trackFresh}
	ln = &onceCloseListener{Listener: ln} // closed by Shutdown, then by net/http
	r.servers = append(r.servers, srv)
	r.lns = append(r.lns, ln)
	go func() {
		for deadline := time.Now().Add(time.Minute); inherited && !r.ready() && time.Now().Before(deadline) && ctx.Err() == nil; {
			time.Sleep(20 * time.Millisecond)
		}
		var err error
		if cert != "" {
			err = srv.ServeTLS(ln, cert, key)
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			r.o.Log.Error(err, "listener stopped", "addr", addr)
		}
	}()
	return nil
}

// onceCloseListener closes its listener once; later closes do nothing.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

func (r *Router) trackFresh(c net.Conn, st http.ConnState) {
	r.freshMu.Lock()
	defer r.freshMu.Unlock()
	if st == http.StateNew {
		if r.fresh == nil {
			r.fresh = map[net.Conn]struct{}{}
		}
		r.fresh[c] = struct{}{}
	} else {
		delete(r.fresh, c)
	}
}

func (r *Router) freshConns() int {
	r.freshMu.Lock()
	defer r.freshMu.Unlock()
	return len(r.fresh)
}

func (r *Router) closeListeners() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// Addr is the router listener's address; MetricsAddr and DebugAddr the
// others (empty when disabled).
func (r *Router) Addr() string { return r.lns[0].Addr().String() }

// DebugAddr returns the debug listener address.
func (r *Router) DebugAddr() string {
	if r.o.DebugAddr == "" {
		return ""
	}
	return r.lns[len(r.lns)-1].Addr().String()
}

// MetricsAddr returns the metrics listener address.
func (r *Router) MetricsAddr() string {
	if r.o.MetricsAddr == "" {
		return ""
	}
	return r.lns[1].Addr().String()
}

// Scraper returns the engine scraper.
func (r *Router) Scraper() *enginestate.Scraper { return r.scraper }

func (r *Router) ready() bool {
	if !r.synced.Load() {
		return false
	}
	select {
	case <-r.scraper.Ready():
		return true
	default:
		return false
	}
}

// showEndpoints shows s's endpoint watchers every endpoint of the store.
func (r *Router) showEndpoints(s *scheduler.Scheduler) {
	if !s.Watches() {
		return
	}
	all := r.Store.AllEndpoints()
	views := make([]framework.Endpoint, len(all))
	eps := make([]*framework.Endpoint, len(all))
	for i, e := range all {
		e.View(&views[i])
		eps[i] = &views[i]
	}
	s.EndpointsChanged(eps)
}

func (r *Router) applyConfig(cfg *config.RouterConfiguration, text string) error {
	s, err := scheduler.Build(r.reg, cfg.Scheduler, r.handle, r.sched.Load())
	if err != nil {
		return fmt.Errorf("router configuration: %w", err)
	}
	for _, p := range s.Plugins() {
		if pc, ok := p.(*prefixcache.Plugin); ok {
			pc.OnEvict(func(n int) { r.Metrics.PrefixEvictions.Add(float64(n)) })
		}
	}
	r.sched.Store(s)
	r.showEndpoints(s)
	r.applySessionStore(cfg.SessionSticky)
	r.applyAuth(cfg.Auth)
	r.limits.SetPerTenant(cfg.RateLimit != nil && cfg.RateLimit.Scope == config.RateLimitScopeTenant)
	r.applyFairness(cfg.Fairness)
	var mig director.Migration
	mig.MaxAttempts, mig.IdleTimeout = cfg.MigrationLimits()
	r.migration.Store(&mig)
	l := &r.coldLimits
	l.MaxHeld, l.Timeout, l.WakeInterval = cfg.ColdStartLimits()
	l.ReleasePerPod = cfg.ColdStartReleasePerPod()
	if r.hold != nil {
		r.hold.SetLimits(*l)
	}
	r.cfgText.Store(&text)
	return nil
}

// migrationLimits are the configured mid-stream migration bounds.
func (r *Router) migrationLimits() director.Migration {
	if m := r.migration.Load(); m != nil {
		return *m
	}
	return director.DefaultMigration
}

// applyFairness turns the fair queue on, off or retunes it; requests that
// wait keep their place.
func (r *Router) applyFairness(c *config.FairnessConfig) {
	if c == nil || !c.Enabled {
		r.fair.Store(nil)
		return
	}
	s := fairness.Settings{MaxQueued: 1000, MaxQueuedPerTenant: 200, Timeout: time.Minute, InputWeight: 1, OutputWeight: 2,
		TenantWeights: c.TenantWeights}
	if c.MaxQueued != nil {
		s.MaxQueued = *c.MaxQueued
	}
	if c.MaxQueuedPerTenant != nil {
		s.MaxQueuedPerTenant = *c.MaxQueuedPerTenant
	}
	if c.QueueTimeout != nil {
		s.Timeout = c.QueueTimeout.Duration
	}
	if c.InputWeight != nil {
		s.InputWeight = *c.InputWeight
	}
	if c.OutputWeight != nil {
		s.OutputWeight = *c.OutputWeight
	}
	r.queues.SetSettings(s)
	header := c.PriorityHeader
	if header == "" {
		header = "X-Kthena-Priority"
	}
	r.fair.Store(&director.Fairness{Queues: r.queues, MaxInFlightPerPod: c.MaxInFlightPerPod, PriorityHeader: header})
}

// applyAuth (re)builds the authenticator when its configuration changed;
// a new one loads its keys in the background (requests meanwhile get 503).
func (r *Router) applyAuth(c *config.AuthConfig) {
	r.authMu.Lock()
	defer r.authMu.Unlock()
	if c != nil && c.JWKSURI == "" && c.TenantHeader == "" {
		c = nil
	}
	if reflect.DeepEqual(c, r.authCfg) {
		return
	}
	if r.authStop != nil {
		r.authStop()
		r.authStop = nil
	}
	r.authCfg = c
	if c == nil {
		r.auth.Store(nil)
		return
	}
	a := auth.New(*c, nil, r.o.Log.WithName("auth"))
	ctx, cancel := context.WithCancel(context.Background())
	r.authStop = cancel
	go a.Run(ctx)
	r.auth.Store(a)
}

// applySessionStore (re)builds the session affinity when its store
// changed; bindings in memory do not survive a change of store.
func (r *Router) applySessionStore(c *config.SessionStoreConfig) {
	want := config.SessionStoreConfig{Store: config.SessionStoreMemory}
	if c != nil {
		want = *c
		if want.Store == "" {
			want.Store = config.SessionStoreMemory
		}
	}
	if r.affinity.Load() != nil && reflect.DeepEqual(want, r.sessionStore) {
		return
	}
	var store session.Store
	if want.Store == config.SessionStoreRedis {
		store = session.NewRedisStore(r.redis.Client(want.Redis.Address))
	} else {
		n := want.MaxEntries
		if n == 0 {
			n = session.DefaultMaxEntries
		}
		store = session.NewMemoryStore(n)
	}
	r.sessionStore = want
	r.affinity.Store(session.NewAffinity(store))
}

// ReloadConfig re-reads the configuration file; on error the running
// configuration stays.
func (r *Router) ReloadConfig() error {
	cfg, data, err := config.Load(r.o.ConfigFile)
	if err == nil {
		err = r.applyConfig(cfg, string(data))
	}
	if err != nil {
		r.Metrics.ConfigReloads.WithLabelValues("error").Inc()
		r.o.Log.Error(err, "router configuration reload failed; keeping the running configuration")
		return err
	}
	r.Metrics.ConfigReloads.WithLabelValues("ok").Inc()
	r.o.Log.Info("router configuration reloaded", "path", r.o.ConfigFile)
	return nil
}

// Shutdown fails readiness and closes each connection after its next
// response (so clients reconnect elsewhere), keeps accepting for the
// shutdown delay, then stops accepting and waits up to the drain timeout for
// in-flight requests (streams included) to finish.
//
// Idle keep-alive connections are not closed when the drain starts: a
// client may be sending its next request on one at that instant, and HTTP
// clients do not resend a POST the server dropped unanswered. Answering it
// with Connection: close moves the client without losing the request.
func (r *Router) Shutdown(ctx context.Context) error {
	r.handler.SetDraining()
	if r.o.ShutdownDelay > 0 {
		r.o.Log.Info("draining: still accepting while load balancers catch up", "delay", r.o.ShutdownDelay)
		select {
		case <-ctx.Done():
		case <-time.After(r.o.ShutdownDelay):
		}
	}
	// Stop accepting, and let the connections just accepted have their
	// first request read before http.Server.Shutdown, which closes a
	// connection whose request it reads after it began without answering
	// (the client sees EOF). A client that connected and sends nothing
	// within a second loses nothing.
	for _, l := range r.lns {
		_ = l.Close()
	}
	for deadline := time.Now().Add(time.Second); r.freshConns() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	d := r.o.DrainTimeout
	if d <= 0 {
		d = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var err error
	for _, s := range r.servers {
		if e := s.Shutdown(ctx); e != nil && err == nil {
			err = e
		}
	}
	r.cancel()
	r.wg.Wait()
	if r.accessLog != nil {
		_ = r.accessLog.Close() // after the last request
	}
	if r.heapFloor != nil {
		r.heapFloor.Stop()
	}
	r.applyAuth(nil)
	_ = r.redis.Close()
	return err
}
