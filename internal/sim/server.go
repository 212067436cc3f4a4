package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"
	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/kvevents"
	"github.com/kthena/kthena/internal/sim/perfmodel"
	"github.com/kthena/kthena/internal/tokenizer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Engine is one simulated vLLM or SGLang server.
type Engine struct {
	cfg      Config
	id       string
	log      logr.Logger
	profile  perfmodel.Profile
	core     *engine.Engine
	tok      *tokenizer.Tokenizer
	planner  *outputPlanner
	failures *failureInjector
	registry *prometheus.Registry
	events   *kvevents.Publisher
	lora     *loraRegistry
	pd       *pdState
	simm     *simMetrics
	nixlm    *nixlMetrics     // vLLM with the nixl connector
	sgpd     *sglangPDMetrics // SGLang in a prefill or decode role
	lmstore  *lmcacheStore    // the store this engine serves
	started  time.Time
	mux      *http.ServeMux

	cancel   context.CancelFunc
	done     chan struct{}
	requests atomic.Int64
	crashed  chan struct{}
	crashOne sync.Once
	addrMu   sync.Mutex
	addr     string
}

// Option customises New.
type Option func(*options)

type options struct {
	tok *tokenizer.Tokenizer
	log logr.Logger
	reg *prometheus.Registry
}

// WithTokenizer shares an already loaded tokenizer (Fleet does this). A
// Config.TokenizerDir takes precedence: that engine uses the model's own.
func WithTokenizer(t *tokenizer.Tokenizer) Option { return func(o *options) { o.tok = t } }

// WithLogger sets the structured logger.
func WithLogger(l logr.Logger) Option { return func(o *options) { o.log = l } }

// WithRegistry exposes metrics on the given registry instead of a new one.
func WithRegistry(r *prometheus.Registry) Option { return func(o *options) { o.reg = r } }

// New builds and starts an engine (its scheduler runs until Close).
func New(cfg Config, opts ...Option) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid simulator config: %w", err)
	}
	o := options{log: logr.Discard()}
	for _, f := range opts {
		f(&o)
	}
	if cfg.TokenizerDir != "" {
		// Load shares one Tokenizer per directory, so engines of a fleet
		// that name the same files share it too.
		t, err := tokenizer.Load(cfg.TokenizerDir)
		if err != nil {
			return nil, err
		}
		o.tok = t
	}
	if o.tok == nil {
		t, err := tokenizer.New("")
		if err != nil {
			return nil, err
		}
		o.tok = t
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	prof, _ := perfmodel.Builtin().Lookup(cfg.Profile)
	prof.GPUMemoryUtilization = cfg.GPUMemoryUtilization
	numBlocks := cfg.KVCacheSize
	if numBlocks == 0 {
		numBlocks = prof.KVCacheBlocks(cfg.BlockSize)
	}
	if numBlocks <= 0 {
		return nil, fmt.Errorf("profile %s leaves no memory for the KV cache", prof.Name)
	}
	e := &Engine{
		cfg: cfg, id: uuid.NewString(), log: o.log.WithValues("engine", cfg.Engine, "model", cfg.ServedModelNames[0]),
		profile: prof, tok: o.tok, planner: newOutputPlanner(cfg.Mode, o.tok, cfg.Seed),
		failures: newFailureInjector(cfg.FailureInjectionRate, cfg.FailureTypes, cfg.Seed),
		registry: o.reg, started: time.Now(), done: make(chan struct{}), crashed: make(chan struct{}),
	}
	var obs engine.Observer
	model := cfg.ServedModelNames[0]
	e.simm = newSimMetrics(o.reg, model)
	if cfg.Engine == SGLang {
		if cfg.KVRole != RoleBoth {
			e.sgpd = newSGLangPDMetrics(o.reg, model)
		}
		obs = newSGLangMetrics(o.reg, model, cfg.BlockSize, e.simm, e.sgpd)
	} else {
		if cfg.KVConnector == ConnectorNixl {
			e.nixlm = newNixlMetrics(o.reg, model)
		}
		obs = newVLLMMetrics(o.reg, model, cfg, numBlocks, e.simm)
	}
	e.lmstore = newLMCacheStore(lmcacheMaxChunks)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	var sink func(kvevents.Batch)
	if cfg.KVEventsEndpoint != "" {
		codec := kvevents.Codec{IntHashes: cfg.KVEventsIntHashes}
		if cfg.KVEventsKeyed {
			codec.Encoding = kvevents.Keyed
		}
		pub, err := kvevents.NewPublisher(ctx, cfg.KVEventsEndpoint, cfg.KVEventsTopic, codec)
		if err != nil {
			cancel()
			return nil, err
		}
		e.events = pub
		sink = func(b kvevents.Batch) {
			if err := pub.Publish(b); err != nil {
				e.log.V(2).Info("dropping kv events", "err", err)
			}
		}
	}
	core, err := engine.New(engine.Options{
		Profile: &e.profile, NumBlocks: numBlocks, BlockSize: cfg.BlockSize, MaxNumSeqs: cfg.MaxNumSeqs,
		MaxNumBatchedTokens: cfg.MaxNumBatchedTokens, PrefixCaching: cfg.prefixCaching(), MaxLoRAs: cfg.MaxLoRAs,
		TimeScale: cfg.TimeScale, FixedTTFT: cfg.TimeToFirstToken, FixedITL: cfg.InterTokenLatency,
		Hasher: kvcache.NewHasher(cfg.HashSeed), Events: sink, Observer: obs, Logger: e.log,
		ExternalCache: cfg.KVConnector != ConnectorNone || cfg.KVRole == RoleDecode,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	e.core = core
	e.lora = newLoRARegistry(cfg)
	e.pd = newPDState()
	e.mux = e.routes()
	go func() {
		defer close(e.done)
		core.Run(ctx)
	}()
	e.log.Info("engine ready", "profile", prof.Name, "kvBlocks", numBlocks, "blockSize", cfg.BlockSize,
		"maxNumSeqs", cfg.MaxNumSeqs, "timeScale", cfg.TimeScale, "kvRole", cfg.KVRole, "kvConnector", cfg.KVConnector)
	return e, nil
}

// Config returns the effective configuration.
func (e *Engine) Config() Config { return e.cfg }

// Tokenizer returns the engine's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// Profile returns the performance profile in use.
func (e *Engine) Profile() perfmodel.Profile { return e.profile }

// Stats is a read-only snapshot of the scheduler and cache.
func (e *Engine) Stats() engine.Stats { return e.core.Stats() }

// CachedPrefixTokens is how many tokens of prompt (token IDs) the engine
// would serve from its prefix cache now.
func (e *Engine) CachedPrefixTokens(prompt []int, lora string) int {
	return e.core.CachedPrefixTokens(prompt, lora)
}

// Registry is the Prometheus registry behind /metrics.
func (e *Engine) Registry() *prometheus.Registry { return e.registry }

// Handler serves the engine's HTTP API.
func (e *Engine) Handler() http.Handler { return e.mux }

// Crashed is closed when the engine crashes on purpose (--crash-after).
func (e *Engine) Crashed() <-chan struct{} { return e.crashed }

// Addr is the address Serve listens on, once it does.
func (e *Engine) Addr() string {
	e.addrMu.Lock()
	defer e.addrMu.Unlock()
	return e.addr
}

// ErrCrashed is returned by Serve after an injected crash.
var ErrCrashed = errors.New("engine crashed (injected)")

// Serve answers HTTP on ln until ctx ends, then shuts down gracefully:
// stop accepting, give in-flight requests the grace period, then abort them.
func (e *Engine) Serve(ctx context.Context, ln net.Listener) error {
	e.addrMu.Lock()
	e.addr = ln.Addr().String()
	e.addrMu.Unlock()
	srv := &http.Server{Handler: e.mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var extra *http.Server
	if e.cfg.Engine == SGLang && e.cfg.KVRole == RolePrefill && e.cfg.BootstrapPort > 0 {
		bl, err := net.Listen("tcp", net.JoinHostPort(e.cfg.Host, strconv.Itoa(e.cfg.BootstrapPort)))
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("bootstrap listener: %w", err)
		}
		extra = &http.Server{Handler: e.mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = extra.Serve(bl) }()
	}
	select {
	case err := <-errc:
		e.Close()
		return err
	case <-e.crashed:
		// Let the request that triggered the crash finish writing, then
		// drop everything else.
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(cctx)
		cancel()
		_ = srv.Close()
		if extra != nil {
			_ = extra.Close()
		}
		e.Close()
		return ErrCrashed
	case <-ctx.Done():
	}
	e.log.Info("shutting down", "grace", e.cfg.ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if extra != nil {
		_ = extra.Shutdown(sctx)
	}
	e.Close() // aborts whatever outlived the grace period
	if err != nil {
		_ = srv.Close()
	}
	return nil
}

// Close stops the scheduler (aborting in-flight requests) and the event
// publisher.
func (e *Engine) Close() {
	e.cancel()
	<-e.done
	if e.events != nil {
		_ = e.events.Close()
	}
}

func (e *Engine) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/chat/completions", e.handleChat)
	m.HandleFunc("POST /v1/completions", e.handleCompletion)
	m.HandleFunc("GET /v1/models", e.handleModels)
	m.HandleFunc("GET /health", e.handleHealth)
	m.HandleFunc("GET /health_generate", e.handleHealth)
	m.HandleFunc("GET /ready", e.handleHealth)
	m.HandleFunc("POST /tokenize", e.handleTokenize)
	m.HandleFunc("POST /detokenize", e.handleDetokenize)
	m.HandleFunc("POST /v1/load_lora_adapter", e.handleLoadLoRA)
	m.HandleFunc("POST /v1/unload_lora_adapter", e.handleUnloadLoRA)
	m.HandleFunc("POST /reset_prefix_cache", e.handleResetPrefixCache)
	m.HandleFunc("POST /sim/v1/kv_pull", e.handleKVPull)
	m.HandleFunc("GET /sim/v1/bootstrap/{room}", e.handleBootstrap)
	m.HandleFunc("POST /sim/v1/lmcache/put", e.lmstore.handlePut)
	m.HandleFunc("POST /sim/v1/lmcache/lookup", e.lmstore.handleLookup)
	m.HandleFunc("GET /sim/v1/stats", e.handleStats)
	m.HandleFunc("POST /sim/v1/cached_tokens", e.handleCachedTokens)
	m.Handle("GET /metrics", promhttp.HandlerFor(e.registry, promhttp.HandlerOpts{}))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		e.writeError(w, notFound("Not Found: "+r.Method+" "+r.URL.Path))
	})
	return m
}

// ready is false during the simulated startup delay.
func (e *Engine) ready() bool {
	delay := time.Duration(float64(e.cfg.StartupDelay) * e.cfg.TimeScale)
	return time.Since(e.started) >= delay
}

func (e *Engine) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if !e.ready() {
		e.writeError(w, unavailable("model is loading"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (e *Engine) handleResetPrefixCache(w http.ResponseWriter, _ *http.Request) {
	if !e.core.ResetPrefixCache() {
		e.writeError(w, badRequest("cannot reset the prefix cache while requests run"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// countRequest implements --crash-after.
func (e *Engine) countRequest() {
	n := e.requests.Add(1)
	if e.cfg.CrashAfter > 0 && n >= int64(e.cfg.CrashAfter) {
		e.crashOne.Do(func() {
			e.log.Info("crashing on purpose", "afterRequests", n)
			close(e.crashed)
		})
	}
}
