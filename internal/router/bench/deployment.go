package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/stdr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/director"
	"github.com/kthena/kthena/internal/router/provider/kubernetes"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/testing/controlplane"
)

// DeploymentOptions configure the deployment mode of the overhead
// benchmark: the router as it runs in a cluster (Kubernetes provider
// against a real kube-apiserver and etcd, engine scraping at its default
// interval, access log on, /metrics scraped by a client every second).
type DeploymentOptions struct {
	Engines int
	// Rate is the open-loop rate of small requests.
	Rate float64
	// Duration is each variant's time per scenario, split over Rounds
	// alternated phases.
	Duration time.Duration
	Rounds   int
	// SmallClients, StreamClients and LargeClients are the closed loops'
	// sizes; StreamChunks the chunks of each streamed answer; LargeBytes
	// the large prompts' size.
	SmallClients, StreamClients, LargeClients int
	StreamChunks, LargeBytes                  int
	// EngineTime, when positive, adds a large-prompt scenario whose
	// engines take this long per request (real engines need seconds for
	// a 200 KiB prompt).
	EngineTime time.Duration
	// RouterCommand starts the router child (given --kubeconfig); Baseline,
	// when set, starts a second router (another build) measured in
	// alternation with it, for a before/after in one run.
	RouterCommand, BaselineCommand []string
	EngineCommand                  []string
	// RouterEnv is added to the routers' environment (GODEBUG=gctrace=1,
	// GOGC=...).
	RouterEnv []string
	// LogDir receives the routers' stdout (their access logs), as a
	// container runtime's log files would; empty: a temporary directory.
	LogDir     string
	CPUProfile string
	Only       string
}

// Variant is one path requests take: straight to the engines, or through a
// router build.
type Variant struct {
	Name string
	// Percentiles of latency from the intended send time (open loop) or
	// the send (closed loop).
	P50, P90, P99, P999, Max time.Duration
	RPS                      float64
	Requests, Errors         int
	// Router only: CPU per request (/proc), and the Go runtime's GC
	// during its phases, from its /metrics.
	CPU time.Duration
	// EngineCPU and ClientCPU are the engines' and the load generator's
	// CPU per request in the same phases: on a saturated machine the
	// routed throughput is bounded by the three together.
	EngineCPU, ClientCPU time.Duration
	// RSS is the router's largest resident set seen at the end of its
	// phases (the heap floor's cost in memory).
	RSS                  int64
	GCs                  float64
	GCPause, GCPauseMax  time.Duration
	TailStages, P50Stage []StageShare
	// Logged is how many of the tail samples had an access log entry.
	Logged int
}

// StageShare is the mean time a group of requests spent in one stage.
type StageShare struct {
	Stage string
	Mean  time.Duration
}

// DeploymentRow is one scenario.
type DeploymentRow struct {
	Scenario string
	Load     string // 1-minute load average at the scenario's start
	Variants []Variant
}

// DeploymentResult is the whole run.
type DeploymentResult struct {
	Rows []DeploymentRow
}

// sample is one request's timeline, wall clock (the router's access log
// shares the clock).
type sample struct {
	id                       string
	intended, sent, received time.Time
	ok                       bool
}

func (s sample) latency() time.Duration { return s.received.Sub(s.intended) }

// routerProc is one router child with what is scraped from it.
type routerProc struct {
	name    string
	ch      *child
	metrics string
	log     string

	mu sync.Mutex
	// maxPause is the largest go_gc_duration_seconds{quantile="1"} seen
	// by the scraper since the last reset.
	maxPause float64
}

// serveDeployedRouter is the router child of the deployment mode.
func serveDeployedRouter(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100 // the router command's defaults
	log := stdr.New(nil)
	waker, err := kubernetes.NewWaker(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := runner.Start(ctx, runner.Options{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Kubernetes: true,
		KubernetesProvider: kubernetes.New(kubernetes.Options{Config: cfg, OnExit: func(error) { cancel() }}), Waker: waker,
		ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: 5 * time.Minute, DrainTimeout: time.Second,
		AccessLog: true, AccessLogFormat: "text", AccessLogStages: true, Log: log, GCHeapFloor: runner.DefaultGCHeapFloor})
	if err != nil {
		return err
	}
	fmt.Println(r.Addr(), r.MetricsAddr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return r.Shutdown(context.Background())
}

// RunDeployment runs the deployment mode.
func RunDeployment(ctx context.Context, o DeploymentOptions) (*DeploymentResult, error) {
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	hosts := make([]string, o.Engines)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", i+1)
	}
	ec, err := startChild(o.EngineCommand, []string{"--hosts", strings.Join(hosts, ",")}, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = ec.stop() }()
	addrs := strings.Fields(ec.addr)
	if len(addrs) != o.Engines {
		return nil, fmt.Errorf("engine child printed %q", ec.addr)
	}
	_, port, _ := strings.Cut(addrs[0], ":")
	if err := deployModel(ctx, env.Client, hosts, port); err != nil {
		return nil, err
	}
	logDir := o.LogDir
	if logDir == "" {
		if logDir, err = os.MkdirTemp("", "kthena-bench-logs"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(logDir)
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	var routers []*routerProc
	start := func(name string, command []string, profile string) error {
		path := filepath.Join(logDir, "router-"+name+".log")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		extra := []string{"--kubeconfig", env.Kubeconfig}
		if profile != "" {
			extra = append(extra, "--cpuprofile", profile)
		}
		ch, err := startChildEnv(command, extra, 0, o.RouterEnv, f)
		if err != nil {
			f.Close()
			return err
		}
		a := strings.Fields(ch.addr)
		if len(a) != 2 {
			_ = ch.stop()
			f.Close()
			return fmt.Errorf("router child %s printed %q: want the router's and the metrics' addresses (is it a deployment-mode build?)", name, ch.addr)
		}
		routers = append(routers, &routerProc{name: name, ch: &child{cmd: ch.cmd, stdin: ch.stdin, addr: a[0], copied: ch.copied}, metrics: a[1], log: path})
		return nil
	}
	if len(o.BaselineCommand) > 0 {
		if err := start("baseline", o.BaselineCommand, ""); err != nil {
			return nil, err
		}
	}
	if err := start("router", o.RouterCommand, o.CPUProfile); err != nil {
		return nil, err
	}
	defer func() {
		for _, r := range routers {
			_ = r.ch.stop()
		}
	}()
	client := &http.Client{Transport: director.NewTransport()}
	for _, r := range routers {
		if err := waitServing(client, r.ch.addr); err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
	}
	scrapeCtx, stopScrape := context.WithCancel(ctx)
	defer stopScrape()
	for _, r := range routers {
		go r.scrape(scrapeCtx)
	}

	small, large := chatBody(100, false), chatBody(o.LargeBytes, false)
	streamed := chatBody(100, true)
	type scenario struct {
		name string
		run  func(base func(int) string, d time.Duration, tag string) phase2
	}
	scenarios := []scenario{
		{fmt.Sprintf("100 B prompt, non-streaming, open loop %.0f req/s", o.Rate), func(base func(int) string, d time.Duration, tag string) phase2 {
			return openLoop2(client, base, small, o.Rate, d, tag)
		}},
		{fmt.Sprintf("100 B prompt, non-streaming, closed loop %d clients", o.SmallClients), func(base func(int) string, d time.Duration, tag string) phase2 {
			return closedLoop2(client, base, small, o.SmallClients, d, tag, nil)
		}},
		{fmt.Sprintf("streaming %d chunks, closed loop %d clients", o.StreamChunks, o.StreamClients), func(base func(int) string, d time.Duration, tag string) phase2 {
			return closedLoop2(client, base, streamed, o.StreamClients, d, tag, http.Header{"X-Stream": {"1"}, "X-Chunks": {strconv.Itoa(o.StreamChunks)}})
		}},
		{fmt.Sprintf("%s prompt, non-streaming, closed loop %d clients, engines answer at once", size(o.LargeBytes), o.LargeClients), func(base func(int) string, d time.Duration, tag string) phase2 {
			return closedLoop2(client, base, large, o.LargeClients, d, tag, nil)
		}},
	}
	if o.EngineTime > 0 {
		scenarios = append(scenarios, scenario{fmt.Sprintf("%s prompt, non-streaming, closed loop %d clients, engine time %s", size(o.LargeBytes), o.LargeClients, o.EngineTime),
			func(base func(int) string, d time.Duration, tag string) phase2 {
				return closedLoop2(client, base, large, o.LargeClients, d, tag, http.Header{"X-Engine-Time": {o.EngineTime.String()}})
			}})
	}
	direct := func(i int) string { return "http://" + addrs[i%len(addrs)] }
	out := &DeploymentResult{}
	for si, sc := range scenarios {
		if o.Only != "" && !strings.Contains(sc.name, o.Only) {
			continue
		}
		row := DeploymentRow{Scenario: sc.name, Load: loadavg1()}
		n := len(routers) + 1
		phases := make([]phase2, n)
		cpu := make([]time.Duration, n)
		engineCPU, clientCPU := make([]time.Duration, n), make([]time.Duration, n)
		gc := make([]gcStats, n)
		rss := make([]int64, n)
		rounds := max(1, o.Rounds)
		for round := 0; round < rounds; round++ {
			for v := 0; v < n; v++ {
				tag := fmt.Sprintf("s%d-r%d-v%d-", si, round, v)
				d := o.Duration / time.Duration(rounds)
				e0, s0 := ec.cpu(), selfCPU()
				if v == 0 {
					phases[0].add(sc.run(direct, d, tag))
					engineCPU[0], clientCPU[0] = engineCPU[0]+ec.cpu()-e0, clientCPU[0]+selfCPU()-s0
					continue
				}
				r := routers[v-1]
				g0, c0 := r.gc(client), r.ch.cpu()
				r.resetMaxPause()
				addr := "http://" + r.ch.addr
				phases[v].add(sc.run(func(int) string { return addr }, d, tag))
				cpu[v] += r.ch.cpu() - c0
				rss[v] = max(rss[v], r.ch.rss())
				engineCPU[v], clientCPU[v] = engineCPU[v]+ec.cpu()-e0, clientCPU[v]+selfCPU()-s0
				gc[v].add(r.gc(client).minus(g0), r.takeMaxPause())
			}
		}
		time.Sleep(300 * time.Millisecond) // the access log's last entries
		for v := 0; v < n; v++ {
			p := phases[v]
			vr := p.variant("direct")
			vr.EngineCPU, vr.ClientCPU = perReq(engineCPU[v], vr.Requests), perReq(clientCPU[v], vr.Requests)
			if v > 0 {
				r := routers[v-1]
				vr = p.variant(r.name)
				vr.EngineCPU, vr.ClientCPU = perReq(engineCPU[v], vr.Requests), perReq(clientCPU[v], vr.Requests)
				vr.CPU = perReq(cpu[v], vr.Requests)
				vr.RSS = rss[v]
				vr.GCs, vr.GCPause, vr.GCPauseMax = gc[v].count, gc[v].sum, gc[v].max
				entries, err := readStages(r.log)
				if err != nil {
					return nil, err
				}
				vr.TailStages, vr.Logged = breakdown(p.tail(0.99, 1), entries)
				vr.P50Stage, _ = breakdown(p.tail(0.45, 0.55), entries)
			}
			row.Variants = append(row.Variants, vr)
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// deployModel creates the ModelServer, ModelRoute and the engines' Pods,
// ready with their addresses, as a kubelet would report them.
func deployModel(ctx context.Context, c client.Client, hosts []string, port string) error {
	var ms networkingv1alpha1.ModelServer
	var mr networkingv1alpha1.ModelRoute
	docs := map[any]string{
		&ms: fmt.Sprintf("metadata: {name: s, namespace: default}\nspec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: s}}, workloadPort: {port: %s}}", port),
		&mr: "metadata: {name: r, namespace: default}\nspec: {modelName: m, rules: [{targetModels: [{modelServerName: s}]}]}",
	}
	for obj, doc := range docs {
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return err
		}
	}
	for _, obj := range []client.Object{&ms, &mr} {
		if err := c.Create(ctx, obj); err != nil {
			return err
		}
	}
	for i, ip := range hosts {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("engine-%d", i), Namespace: "default", Labels: map[string]string{"app": "s"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "kthena-bench"}}}}
		if err := c.Create(ctx, p); err != nil {
			return err
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}}
		if err := c.Status().Update(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// waitServing waits until the router is ready and answers a chat request
// (its caches hold the model and its pods).
func waitServing(c *http.Client, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := c.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(10, false)))
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("router did not serve the model within 60 s")
}

// gcStats are the Go runtime's collections over a phase.
type gcStats struct {
	count    float64
	sum, max time.Duration
}

func (g *gcStats) add(d gcStats, maxPause time.Duration) {
	g.count += d.count
	g.sum += d.sum
	g.max = max(g.max, maxPause)
}

func (g gcStats) minus(o gcStats) gcStats {
	return gcStats{count: g.count - o.count, sum: g.sum - o.sum}
}

// gc reads the router's go_gc_duration_seconds count and sum.
func (r *routerProc) gc(c *http.Client) gcStats {
	m := r.fetch(c)
	return gcStats{count: m["go_gc_duration_seconds_count"], sum: time.Duration(m["go_gc_duration_seconds_sum"] * 1e9)}
}

func (r *routerProc) resetMaxPause() {
	r.mu.Lock()
	r.maxPause = 0
	r.mu.Unlock()
}

func (r *routerProc) takeMaxPause() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Duration(r.maxPause * 1e9)
}

// scrape reads the router's /metrics every second, as Prometheus would,
// and keeps the largest recent GC pause it reports.
func (r *routerProc) scrape(ctx context.Context) {
	c := &http.Client{Timeout: 5 * time.Second}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if v, ok := r.fetch(c)[`go_gc_duration_seconds{quantile="1"}`]; ok {
			r.mu.Lock()
			r.maxPause = math.Max(r.maxPause, v)
			r.mu.Unlock()
		}
	}
}

// fetch returns the router's metrics samples by name and labels.
func (r *routerProc) fetch(c *http.Client) map[string]float64 {
	out := map[string]float64{}
	res, err := c.Get("http://" + r.metrics + "/metrics")
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// phase2 is one variant's samples over its phases.
type phase2 struct {
	samples []sample
	elapsed time.Duration
}

func (p *phase2) add(q phase2) {
	p.samples, p.elapsed = append(p.samples, q.samples...), p.elapsed+q.elapsed
}

func (p *phase2) variant(name string) Variant {
	v := Variant{Name: name}
	var lat []time.Duration
	for _, s := range p.samples {
		if s.ok {
			lat = append(lat, s.latency())
		} else {
			v.Errors++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	v.Requests = len(lat)
	if len(lat) > 0 {
		at := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)] }
		v.P50, v.P90, v.P99, v.P999, v.Max = at(.5), at(.9), at(.99), at(.999), lat[len(lat)-1]
	}
	if p.elapsed > 0 {
		v.RPS = float64(len(lat)) / p.elapsed.Seconds()
	}
	return v
}

// tail returns the successful samples between two latency quantiles.
func (p *phase2) tail(from, to float64) []sample {
	var ok []sample
	for _, s := range p.samples {
		if s.ok {
			ok = append(ok, s)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].latency() < ok[j].latency() })
	return ok[int(float64(len(ok))*from):int(float64(len(ok))*to)]
}

// sendTimed sends one request with its ID and records its timeline.
func sendTimed(c *http.Client, url, body, id string, h http.Header, intended time.Time) sample {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set(director.RequestIDHeader, id)
	s := sample{id: id, intended: intended, sent: time.Now()}
	if s.intended.IsZero() {
		s.intended = s.sent
	}
	res, err := c.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		s.ok = err == nil && res.StatusCode == http.StatusOK
	}
	s.received = time.Now()
	return s
}

// openLoop2 sends at a fixed rate; latency counts from each request's
// intended send time, so a stalled sender does not hide a stall
// (coordinated omission).
func openLoop2(c *http.Client, base func(int) string, body string, rate float64, d time.Duration, tag string) phase2 {
	var mu sync.Mutex
	var p phase2
	p.elapsed = paceOpen(rate, d, func(i int, at time.Time) {
		s := sendTimed(c, base(i), body, tag+strconv.Itoa(i), nil, at)
		mu.Lock()
		p.samples = append(p.samples, s)
		mu.Unlock()
	})
	return p
}

func closedLoop2(c *http.Client, base func(int) string, body string, conc int, d time.Duration, tag string, h http.Header) phase2 {
	var mu sync.Mutex
	var p phase2
	p.elapsed = paceClosed(conc, d, 0, func(i int) {
		s := sendTimed(c, base(i), body, tag+strconv.Itoa(i), h, time.Time{})
		mu.Lock()
		p.samples = append(p.samples, s)
		mu.Unlock()
	})
	return p
}

// logged is one access log entry's timeline: the handler's start (wall
// clock) and the stage offsets.
type logged struct {
	start  time.Time
	stages [8]time.Duration
}

// readStages reads the access log's request IDs and stage timings.
func readStages(path string) (map[string]logged, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]logged{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 2 || line[0] != '[' {
			continue
		}
		end := strings.IndexByte(line, ']')
		if end < 0 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, line[1:end])
		if err != nil {
			continue
		}
		id, st := field(line, " request_id="), field(line, " stages_us=")
		if id == "" || st == "" {
			continue
		}
		e := logged{start: ts}
		for i, v := range strings.Split(st, "/") {
			if i < len(e.stages) {
				us, _ := strconv.ParseInt(v, 10, 64)
				e.stages[i] = time.Duration(us) * time.Microsecond
			}
		}
		out[id] = e
	}
	return out, sc.Err()
}

func field(line, key string) string {
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	v := line[i+len(key):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// StageNames are the breakdown's stages, in order.
var StageNames = []string{"client send lag", "connect, head read, handler start", "body read", "parse", "route", "schedule",
	"connect + write upstream", "engine answer", "relay", "log, flush, client read"}

// breakdown is the mean time the samples spent in each stage, and how
// many of them were found in the access log.
func breakdown(ss []sample, entries map[string]logged) ([]StageShare, int) {
	sums := make([]time.Duration, len(StageNames))
	n := 0
	for _, s := range ss {
		e, ok := entries[s.id]
		if !ok {
			continue
		}
		n++
		st := e.stages
		// Steps not reached (zero) take no time: carry the last mark.
		for i := 1; i < len(st); i++ {
			if st[i] == 0 {
				st[i] = st[i-1]
			}
		}
		bodyRead, parsed, routed, scheduled, upStart, sent, respStart, end := st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
		parts := []time.Duration{
			s.sent.Sub(s.intended),
			e.start.Sub(s.sent),
			bodyRead,
			parsed - bodyRead,
			routed - parsed,
			upStart - routed,
			sent - upStart,
			respStart - sent,
			end - respStart,
			s.received.Sub(e.start.Add(end)),
		}
		_ = scheduled // part of "schedule" (route → upstream start)
		for i, d := range parts {
			sums[i] += d
		}
	}
	out := make([]StageShare, len(StageNames))
	for i, name := range StageNames {
		out[i].Stage = name
		if n > 0 {
			out[i].Mean = sums[i] / time.Duration(n)
		}
	}
	return out, n
}

// rss is the child's resident set in bytes (Linux /proc).
func (c *child) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// selfCPU is the benchmark process's CPU time (the load generator's, with
// the metrics scraper and the access log copy).
func selfCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	return statCPU(string(b))
}

func loadavg1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "n/a"
}

// DeploymentMarkdown renders the result.
func DeploymentMarkdown(r *DeploymentResult, o DeploymentOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d echo engines (one child process, one loopback address each, one port) are Pods of one ModelServer in a real kube-apiserver + etcd; the router runs in Kubernetes mode in its own process with its defaults: engine scraping every second, access log on (text, with stage timings) to stdout, which the bench copies to a file as a container runtime does; a client scrapes the router's /metrics every second. Phases alternate (%d rounds, %s per variant per scenario). Latency counts from the intended send time in open loop (coordinated omission corrected) and from the send in closed loop; added = router − direct at the same percentile. Router CPU is the child's user+system time (/proc) over its requests, engines' and client's likewise (the client column includes the bench's /metrics scraper and the access log copy); GC from its go_gc_duration_seconds (pause max: the largest recent pause it reported during the phases).\n\n",
		o.Engines, max(1, o.Rounds), o.Duration)
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "### %s\n\nLoad average (1 min) at the start: %s.\n\n", row.Scenario, row.Load)
		b.WriteString("| path | p50 | p90 | p99 | p99.9 | max | added p50 | added p99 | req/s | vs direct | errors | router CPU/req | engines CPU/req | client CPU/req | GCs | GC pause total | GC pause max | router RSS |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		d := row.Variants[0]
		for _, v := range row.Variants {
			added50, added99, ratio := "", "", ""
			if v.Name != "direct" {
				added50, added99 = ms(v.P50-d.P50), ms(v.P99-d.P99)
				if d.RPS > 0 {
					ratio = fmt.Sprintf("%.0f %%", 100*v.RPS/d.RPS)
				}
			}
			cpu, gcs, gcp, gcm, rss := "", "", "", "", ""
			if v.Name != "direct" {
				cpu, gcs, gcp, gcm = us(v.CPU), fmt.Sprintf("%.0f", v.GCs), ms(v.GCPause), ms(v.GCPauseMax)
				rss = fmt.Sprintf("%.0f MiB", float64(v.RSS)/(1<<20))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", v.Name, ms(v.P50), ms(v.P90), ms(v.P99), ms(v.P999), ms(v.Max),
				added50, added99, v.RPS, ratio, v.Errors, cpu, us(v.EngineCPU), us(v.ClientCPU), gcs, gcp, gcm, rss)
		}
		var routed []Variant
		for _, v := range row.Variants[1:] {
			if v.Logged > 0 {
				routed = append(routed, v)
			}
		}
		if len(routed) == 0 {
			b.WriteString("\n")
			continue
		}
		b.WriteString("\nWhere the time went (mean per stage, from the client's timestamps and the router's access log stage timings): the slowest 1 % of requests (tail) and the 45th-55th percentile (median band).\n\n| stage |")
		for _, v := range routed {
			fmt.Fprintf(&b, " %s tail | %s median |", v.Name, v.Name)
		}
		b.WriteString("\n|---|")
		for range routed {
			b.WriteString("---|---|")
		}
		b.WriteString("\n")
		for i, name := range StageNames {
			fmt.Fprintf(&b, "| %s |", name)
			for _, v := range routed {
				fmt.Fprintf(&b, " %s | %s |", ms(v.TailStages[i].Mean), ms(v.P50Stage[i].Mean))
			}
			b.WriteString("\n")
		}
		b.WriteString("| tail samples in the access log |")
		for _, v := range routed {
			fmt.Fprintf(&b, " %d | |", v.Logged)
		}
		b.WriteString("\n\n")
	}
	return b.String()
}
