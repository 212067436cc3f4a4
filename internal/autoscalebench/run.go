package autoscalebench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kthena/kthena/internal/platform"
)

// Options configure a benchmark run.
type Options struct {
	Trace Trace
	// Compression: the trace and the autoscaler's clock (sync period,
	// windows, periods, panic hold) run this many times faster than the
	// real time they stand for. The engine's start-up is not compressed.
	Compression float64
	Engine      Engine
	Scaling     Scaling
	// StaticReplicas is the static configuration's count.
	StaticReplicas int32
	MaxTokens      int
	SLO            time.Duration
	Seed           uint64
	Configs        []Config
	// BinDir holds the platform's binaries; AssetsDir the control plane's
	// (empty: the platform's defaults); SourceDir the source tree.
	BinDir, AssetsDir, SourceDir string
	// WorkDir holds each run's state directory (removed after the run
	// unless KeepState).
	WorkDir   string
	KeepState bool
	// Progress receives progress lines.
	Progress func(format string, args ...any) `json:"-"`
	Log      logr.Logger                      `json:"-"`
}

// SyncPeriod is the autoscaler's period: upstream's 15 s, compressed.
func (o Options) SyncPeriod() time.Duration {
	return time.Duration(float64(15*time.Second) / o.Compression)
}

// Result is one configuration's measurements.
type Result struct {
	Config   Config
	Start    time.Time // the trace's start
	End      time.Time // the trace's end
	Requests []Request
	Pods     []Pod
	Changes  []ReplicaChange
	Summary  Summary
	// ReplicaSeconds over the trace; Savings against the static run (0
	// when there is none).
	ReplicaSeconds float64
	ColdStarts     []ColdStart
	// Router's own counters at the end.
	RouterColdStarts, RouterHeld, RouterHeldLost float64
	// Burst: how long after its start requests still missed the SLO, and
	// how many did.
	BurstAbsorbed time.Duration
	BurstLate     int
	// Scale events on the policy, by reason.
	ScaleEvents map[string]int
	Err         string
}

// Run runs every configuration in turn, each on its own platform.
func Run(ctx context.Context, o Options) ([]Result, error) {
	if err := o.Trace.Validate(); err != nil {
		return nil, err
	}
	arrivals := o.Trace.Arrivals(o.Seed)
	o.Progress("trace: %s, %d requests, peak %.1f req/s, base %.1f req/s, burst ×%g at %s", o.Trace.Duration, len(arrivals), o.Trace.Peak(), o.Trace.Base, o.Trace.BurstFactor, o.Trace.at(o.Trace.BurstAt))
	var out []Result
	for i, c := range o.Configs {
		o.Progress("[%d/%d] %s: %s", i+1, len(o.Configs), c.Name, c.Description)
		r, err := runOne(ctx, o, c, arrivals)
		if err != nil {
			if ctx.Err() != nil {
				return out, err
			}
			o.Log.Error(err, "configuration failed", "config", c.Name)
			r.Err = err.Error()
		}
		out = append(out, r)
		o.Progress("[%d/%d] %s: %s", i+1, len(o.Configs), c.Name, oneLine(r))
	}
	return out, nil
}

func oneLine(r Result) string {
	if r.Err != "" {
		return "failed: " + r.Err
	}
	s := r.Summary
	return fmt.Sprintf("%.0f replica-s, TTFT p50/p90/p99 %s/%s/%s, %.2f%% within SLO (%.2f%% outside cold starts), %d failed, %d cold starts",
		r.ReplicaSeconds, ms(s.P50), ms(s.P90), ms(s.P99), 100*s.WithinSLO, 100*s.WithinSLOWarm, s.Failed, len(r.ColdStarts))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// env is a running platform.
type env struct {
	stateDir   string
	routerURL  string
	metricsURL string
	client     client.WithWatch
	stop       func() error
}

func runOne(ctx context.Context, o Options, c Config, arrivals []time.Duration) (Result, error) {
	res := Result{Config: c}
	e, err := startPlatform(ctx, o, c.Name)
	if err != nil {
		return res, err
	}
	defer func() {
		if err := e.stop(); err != nil {
			o.Log.Error(err, "stopping the platform", "config", c.Name)
		}
		if !o.KeepState {
			_ = os.RemoveAll(filepath.Dir(e.stateDir))
		}
	}()
	w := newWatcher(e.client, o.Log)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := w.start(wctx); err != nil {
		return res, err
	}
	if err := applyYAML(ctx, e.client, manifests(c, o.Engine, o.Scaling, o.StaticReplicas, o.Compression)); err != nil {
		return res, err
	}
	want := int(c.MinReplicas)
	if c.Static {
		want = int(o.StaticReplicas)
	}
	o.Progress("  %s: waiting for %d ready replicas (engine start-up %s)", c.Name, want, o.Engine.StartupDelay)
	if err := w.waitReady(ctx, want, 3*time.Minute); err != nil {
		return res, err
	}
	if want > 0 {
		// The route must know the pods before the first request.
		if err := waitServed(ctx, e.routerURL); err != nil {
			return res, err
		}
	} else if err := waitRouted(ctx, e.routerURL); err != nil {
		return res, err
	}
	load := Load{URL: e.routerURL, Model: benchModel, MaxTokens: o.MaxTokens, Timeout: 4 * time.Minute, Client: NewClient()}
	res.Start = time.Now()
	o.Progress("  %s: replaying %d requests over %s", c.Name, len(arrivals), o.Trace.Duration)
	var mu sync.Mutex
	done, failed := 0, 0
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	tickDone := make(chan struct{})
	go func() {
		for {
			select {
			case <-tickDone:
				return
			case <-tick.C:
				mu.Lock()
				d, f := done, failed
				mu.Unlock()
				o.Progress("  %s: t=%3.0fs rate %.1f req/s, %d done, %d failed, %d ready, spec.replicas %d", c.Name, time.Since(res.Start).Seconds(), o.Trace.Rate(time.Since(res.Start)), d, f, w.readyNow(), w.replicasNow())
			}
		}
	}()
	res.Requests = load.Run(ctx, res.Start, arrivals, func(r Request) {
		mu.Lock()
		done++
		if !r.OK {
			failed++
		}
		mu.Unlock()
	})
	close(tickDone)
	res.End = res.Start.Add(o.Trace.Duration)
	if last := time.Now(); last.After(res.End) {
		// Requests still running past the trace's end: count the time
		// their pods served them.
		res.End = last
	}
	stopWatch()
	res.Pods, res.Changes = w.snapshot()
	res.ColdStarts = ColdStarts(res.Requests, res.Pods, res.Changes)
	if log, err := readAccessLog(filepath.Join(e.stateDir, "logs", "kthena-router.log")); err != nil {
		o.Log.Error(err, "reading the router's access log; cold-start releases are not split", "config", c.Name)
	} else {
		splitRelease(res.ColdStarts, res.Requests, log)
	}
	res.Summary = Summarize(res.Requests, o.SLO)
	res.ReplicaSeconds = ReplicaSeconds(res.Pods, res.Start, res.End)
	bf, bt := o.Trace.Burst()
	res.BurstAbsorbed, res.BurstLate = BurstAbsorption(res.Requests, bf, bt, o.SLO)
	res.RouterColdStarts, res.RouterHeld, res.RouterHeldLost = routerCounters(ctx, e.metricsURL)
	res.ScaleEvents = scaleEvents(ctx, e.client)
	return res, ctx.Err()
}

// startPlatform runs platform.Run in this process on a fresh state
// directory and returns once it serves.
func startPlatform(ctx context.Context, o Options, name string) (*env, error) {
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.WorkDir, "autoscale-"+name+"-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(dir, "state")
	pr, pw := io.Pipe()
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			o.Log.V(1).Info("platform", "config", name, "line", line)
			if _, rest, ok := strings.Cut(line, "Kthena is serving: kubectl --kubeconfig "); ok {
				select {
				case serving <- strings.Fields(rest)[0]:
				default:
				}
			}
		}
	}()
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	exited := make(chan error, 1)
	began := time.Now()
	go func() {
		exited <- platform.Run(pctx, platform.Options{
			StateDir: stateDir, RouterPort: port, BinDir: o.BinDir, AssetsDir: o.AssetsDir, SourceDir: o.SourceDir,
			AutoscalingSyncPeriod: o.SyncPeriod(), Out: pw, Log: o.Log.WithName("platform").V(1),
		})
		_ = pw.Close()
	}()
	stop := func() error {
		cancel()
		select {
		case err := <-exited:
			return err
		case <-time.After(2 * time.Minute):
			return errors.New("the platform did not stop within 2 minutes")
		}
	}
	var kubeconfig string
	select {
	case kubeconfig = <-serving:
	case err := <-exited:
		cancel()
		if err == nil {
			err = errors.New("exited")
		}
		return nil, fmt.Errorf("platform for %s: %w (logs: %s)", name, err, filepath.Join(stateDir, "logs"))
	case <-time.After(5 * time.Minute):
		_ = stop()
		return nil, fmt.Errorf("platform for %s not serving after 5 minutes", name)
	case <-ctx.Done():
		_ = stop()
		return nil, ctx.Err()
	}
	o.Progress("  %s: platform serving after %.1fs (state %s)", name, time.Since(began).Seconds(), stateDir)
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		_ = stop()
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: platform.Scheme()})
	if err != nil {
		_ = stop()
		return nil, err
	}
	var ports struct {
		RouterMetrics int `json:"routerMetrics"`
	}
	data, err := os.ReadFile(filepath.Join(stateDir, "ports.json"))
	if err == nil {
		err = json.Unmarshal(data, &ports)
	}
	if err != nil {
		_ = stop()
		return nil, fmt.Errorf("reading the platform's ports: %w", err)
	}
	return &env{
		stateDir: stateDir, routerURL: fmt.Sprintf("http://127.0.0.1:%d", port),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports.RouterMetrics),
		client:     c, stop: stop,
	}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func applyYAML(ctx context.Context, c client.Client, data string) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		var err error
		for range 30 {
			// The webhooks may still be starting: retry.
			if err = c.Create(ctx, &u); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// waitServed sends requests until one is answered: the router knows the
// route and a ready pod.
func waitServed(ctx context.Context, url string) error {
	l := Load{URL: url, Model: benchModel, MaxTokens: 2, Timeout: 10 * time.Second, Client: NewClient()}
	deadline := time.Now().Add(time.Minute)
	for {
		r := l.one(ctx, -1)
		if r.OK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the router does not serve %s: %d %s", benchModel, r.Status, r.Err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitRouted waits until the router lists the model (without sending a
// request, which would wake a model at zero).
func waitRouted(ctx context.Context, url string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url + "/v1/models")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if bytes.Contains(b, []byte(`"`+benchModel+`"`)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the router does not list %s after a minute", benchModel)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// routerCounters reads the router's cold-start counters for the model.
func routerCounters(ctx context.Context, url string) (coldStarts, held, lost float64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	server := `model_server="default/` + benchModel + `"`
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, server) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "kthena_router_cold_starts_total{"):
			coldStarts += v
		case strings.HasPrefix(line, "kthena_router_held_requests_total{"):
			held += v
			if !strings.Contains(line, `outcome="released"`) {
				lost += v
			}
		}
	}
	return
}
