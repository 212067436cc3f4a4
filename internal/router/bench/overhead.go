// Package bench holds the router benchmarks as a library: overhead (the same
// load straight to engines and through the router, side by side, with the
// router in its own process so its CPU is measured alone) and quality
// (routing policies on a simulated GPU fleet).
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/router/director"
	"github.com/kthena/kthena/internal/router/runner"
)

// OverheadOptions configure the overhead benchmark.
type OverheadOptions struct {
	Engines int
	// Rate is the open-loop arrival rate of the small-prompt scenarios.
	Rate     float64
	Duration time.Duration
	// LargeBytes and LargeConcurrency shape the closed-loop large-prompt
	// scenario.
	LargeBytes       int
	LargeConcurrency int
	// EngineTime is how long the engines take per request in the
	// large-prompt scenario that models real engines (an LLM answers a
	// long prompt in seconds, so 150 clients do not make thousands of
	// requests per second); the saturation variant answers at once.
	EngineTime time.Duration
	// SearchRates are the open-loop rates tried for the maximum sustainable
	// rate (small prompts, non-streaming).
	SearchRates []float64
	// RouterCommand starts the router child process; it is given
	// --endpoints-file and prints the router's address on its first line.
	RouterCommand []string
	// EngineCommand starts the engines' child process; it is given
	// --engines N and prints their addresses on its first line. Empty:
	// engines run in the benchmark process, next to the clients, which
	// favours the direct path (no process boundary on it).
	EngineCommand []string
	// CPUProfile, when set, makes the child write a CPU profile of the
	// whole run there.
	CPUProfile string
	// Only, when set, runs only the scenarios whose name contains it
	// ("rate" selects the rate search).
	Only string
	// RouterProcs is the router child's GOMAXPROCS (0: the runtime's
	// default, all cores).
	RouterProcs int
}

// Row is one scenario's result.
type Row struct {
	Scenario             string
	DirectP50, DirectP99 time.Duration
	RouterP50, RouterP99 time.Duration
	DirectRPS, RouterRPS float64
	AddedP50, AddedP99   time.Duration
	// RouterCPU is the router process's CPU time per routed request.
	RouterCPU time.Duration
	Requests  int
}

// RatePoint is one step of the rate search.
type RatePoint struct {
	Offered, Achieved float64
	P50, P99          time.Duration
	RouterCPU         time.Duration
	Sustained         bool
}

// OverheadResult is the whole run.
type OverheadResult struct {
	Rows    []Row
	Search  []RatePoint
	MaxRate float64
}

// echoEngine answers at once, so every microsecond measured above the
// direct path is the router's.
func echoEngine() (*http.Server, string, error) {
	return echoEngineOn("127.0.0.1:0")
}

func echoEngineOn(addr string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	resp := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}],"usage":{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11}}`)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "vllm:num_requests_waiting 0\nvllm:num_requests_running 0\nvllm:kv_cache_usage_perc 0.1\n")
	})
	// Readiness too, so that a layer-4 relay in the router's place (the
	// floor of any proxy hop, -router-binary) passes the bench's probe.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"m"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if d, err := time.ParseDuration(r.Header.Get("X-Engine-Time")); err == nil {
			time.Sleep(d)
		}
		if r.Header.Get("X-Stream") == "1" {
			w.Header().Set("Content-Type", "text/event-stream")
			chunks := 4
			if n, err := strconv.Atoi(r.Header.Get("X-Chunks")); err == nil && n > 0 {
				chunks = n
			}
			for i := 0; i < chunks; i++ {
				fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok\"}}],\"usage\":null}\n\n")
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	return srv, ln.Addr().String(), nil
}

// ServeEngineChild starts echo engines (--engines N), prints their
// addresses on one line and serves until stdin closes. With --hosts
// (comma-separated loopback addresses) there is one engine per host, all
// on the same port, as pods of one ModelServer are.
func ServeEngineChild(args []string) error {
	n := 4
	var hosts []string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--engines":
			v, err := strconv.Atoi(args[i+1])
			if err != nil {
				return fmt.Errorf("--engines: %w", err)
			}
			n = v
		case "--hosts":
			hosts = strings.Split(args[i+1], ",")
		}
	}
	if len(hosts) > 0 {
		srvs, addrs, err := enginesOnHosts(hosts)
		if err != nil {
			return err
		}
		for _, s := range srvs {
			defer s.Close()
		}
		fmt.Println(strings.Join(addrs, " "))
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	}
	var addrs []string
	for i := 0; i < n; i++ {
		srv, addr, err := echoEngine()
		if err != nil {
			return err
		}
		defer srv.Close()
		addrs = append(addrs, addr)
	}
	fmt.Println(strings.Join(addrs, " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// enginesOnHosts starts one echo engine per host on a port free on all
// of them.
func enginesOnHosts(hosts []string) ([]*http.Server, []string, error) {
	for try := 0; try < 20; try++ {
		first, addr, err := echoEngineOn(net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			return nil, nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		srvs, addrs := []*http.Server{first}, []string{addr}
		for _, h := range hosts[1:] {
			s, a, err := echoEngineOn(net.JoinHostPort(h, port))
			if err != nil {
				break
			}
			srvs, addrs = append(srvs, s), append(addrs, a)
		}
		if len(srvs) == len(hosts) {
			return srvs, addrs, nil
		}
		for _, s := range srvs {
			_ = s.Close()
		}
	}
	return nil, nil, errors.New("no port free on every engine host")
}

// ServeRouterChild is the child side of the benchmark: it starts a router
// on 127.0.0.1:0 for an endpoints file, prints its address, and serves
// until stdin closes. With --kubeconfig the router runs as deployed
// instead: Kubernetes mode, access log on (to stdout, with stage timings),
// a metrics listener, whose address follows the router's on the first
// line.
func ServeRouterChild(args []string) error {
	var ep, prof, kubeconfig string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "--endpoints-file":
			ep = args[i+1]
		case "--cpuprofile":
			prof = args[i+1]
		case "--kubeconfig":
			kubeconfig = args[i+1]
		}
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if kubeconfig != "" {
		return serveDeployedRouter(kubeconfig)
	}
	r, err := runner.Start(context.Background(), runner.Options{Addr: "127.0.0.1:0", EndpointsFile: ep,
		ScrapeInterval: time.Second, MaxBodyBytes: 32 << 20, StreamIdleTime: time.Minute, DrainTimeout: time.Second})
	if err != nil {
		return err
	}
	fmt.Println(r.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return r.Shutdown(context.Background())
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	// copied closes once the child's stdout is copied to its sink.
	copied chan struct{}
}

func startChild(command []string, extra []string, procs int) (*child, error) {
	return startChildEnv(command, extra, procs, nil, nil)
}

// startChildEnv starts a child with more environment; after the first
// line, its stdout goes to rest (nil: not read).
func startChildEnv(command []string, extra []string, procs int, env []string, rest io.Writer) (*child, error) {
	args := append(append([]string{}, command[1:]...), extra...)
	cmd := exec.Command(command[0], args...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	if procs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", procs))
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("router child: %w", err)
	}
	c := &child{cmd: cmd, stdin: stdin, addr: strings.TrimSpace(line)}
	if rest != nil {
		c.copied = make(chan struct{})
		go func() { defer close(c.copied); _, _ = io.Copy(rest, br) }()
	}
	return c, nil
}

func (c *child) stop() error {
	_ = c.stdin.Close()
	if c.copied != nil {
		<-c.copied
	}
	return c.cmd.Wait()
}

// cpu is the child's user+system CPU time so far (Linux /proc).
func (c *child) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return statCPU(string(b))
}

// statCPU is user+system time from a /proc/<pid>/stat line.
func statCPU(s string) time.Duration {
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ
}

// RunOverhead runs the benchmark.
func RunOverhead(ctx context.Context, o OverheadOptions) (*OverheadResult, error) {
	var addrs []string
	if len(o.EngineCommand) > 0 {
		ec, err := startChild(o.EngineCommand, []string{"--engines", strconv.Itoa(o.Engines)}, 0)
		if err != nil {
			return nil, err
		}
		defer func() { _ = ec.stop() }()
		addrs = strings.Fields(ec.addr)
	} else {
		for i := 0; i < o.Engines; i++ {
			srv, addr, err := echoEngine()
			if err != nil {
				return nil, err
			}
			defer srv.Close()
			addrs = append(addrs, addr)
		}
	}
	dir, err := os.MkdirTemp("", "kthena-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var f strings.Builder
	f.WriteString("kind: ModelServer\nmetadata: {name: s}\nspec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: s}}, workloadPort: {port: 8000}}\n---\n")
	f.WriteString("kind: ModelRoute\nmetadata: {name: r}\nspec: {modelName: m, rules: [{targetModels: [{modelServerName: s}]}]}\n---\nkind: Endpoints\nendpoints:\n")
	for i, a := range addrs {
		fmt.Fprintf(&f, "- {name: e%d, address: %q, labels: {app: s}}\n", i, a)
	}
	path := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(path, []byte(f.String()), 0o644); err != nil {
		return nil, err
	}
	extra := []string{"--endpoints-file", path}
	if o.CPUProfile != "" {
		extra = append(extra, "--cpuprofile", o.CPUProfile)
	}
	ch, err := startChild(o.RouterCommand, extra, o.RouterProcs)
	if err != nil {
		return nil, err
	}
	defer func() { _ = ch.stop() }()
	client := &http.Client{Transport: director.NewTransport()}
	routed := func(int) string { return "http://" + ch.addr }
	direct := func(i int) string { return "http://" + addrs[i%len(addrs)] }
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(routed(0) + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("router child not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}

	small := chatBody(100, false)
	out := &OverheadResult{}
	for _, stream := range []bool{false, true} {
		name := fmt.Sprintf("100 B prompt, %s, open loop %.0f req/s", streamName(stream), o.Rate)
		gen := func(base func(int) string, d time.Duration) phase {
			return openLoop(client, base, chatBody(100, stream), stream, o.Rate, d)
		}
		if o.selects(name) {
			out.Rows = append(out.Rows, compare(name, ch, direct, gen, o.Duration))
		}
	}
	large := chatBody(o.LargeBytes, false)
	for _, engineTime := range []time.Duration{o.EngineTime, 0} {
		name := fmt.Sprintf("%s prompt, non-streaming, closed loop concurrency %d, engine time %s", size(o.LargeBytes), o.LargeConcurrency, engineTime)
		if engineTime == 0 {
			name = fmt.Sprintf("%s prompt, non-streaming, closed loop concurrency %d, engines answer at once (saturation)", size(o.LargeBytes), o.LargeConcurrency)
		}
		if engineTime < 0 || !o.selects(name) {
			continue
		}
		out.Rows = append(out.Rows, compare(name, ch, direct, func(base func(int) string, d time.Duration) phase {
			return closedLoop(client, base, large, o.LargeConcurrency, engineTime, d)
		}, o.Duration))
	}

	for _, rate := range o.SearchRates {
		if !o.selects("rate search") {
			break
		}
		c0 := ch.cpu()
		p := openLoop(client, routed, small, false, rate, o.Duration/2)
		pt := RatePoint{Offered: rate, Achieved: p.rps(), P50: pct(p.lat, .5), P99: pct(p.lat, .99), RouterCPU: perReq(ch.cpu()-c0, len(p.lat))}
		pt.Sustained = pt.Achieved >= 0.97*rate && p.errors == 0
		out.Search = append(out.Search, pt)
		if !pt.Sustained {
			break
		}
		out.MaxRate = rate
	}
	return out, nil
}

func (o OverheadOptions) selects(name string) bool {
	return o.Only == "" || strings.Contains(name, o.Only)
}

func perReq(cpu time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return cpu / time.Duration(n)
}

func streamName(s bool) string {
	if s {
		return "streaming"
	}
	return "non-streaming"
}

func chatBody(promptBytes int, stream bool) string {
	return fmt.Sprintf(`{"model":"m","stream":%v,"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}]}`,
		stream, strings.Repeat("lorem ipsum ", max(1, promptBytes/12)))
}

// compare alternates direct and routed phases (twice each) so both see the
// same machine state, and measures the router's CPU during routed phases.
func compare(name string, ch *child, direct func(int) string, gen func(base func(int) string, d time.Duration) phase, d time.Duration) Row {
	routed := func(int) string { return "http://" + ch.addr }
	var dp, rp phase
	var cpu time.Duration
	for round := 0; round < 2; round++ {
		dp.add(gen(direct, d/4))
		c0 := ch.cpu()
		rp.add(gen(routed, d/4))
		cpu += ch.cpu() - c0
	}
	row := Row{Scenario: name, Requests: len(dp.lat) + len(rp.lat)}
	row.DirectP50, row.DirectP99 = pct(dp.lat, .5), pct(dp.lat, .99)
	row.RouterP50, row.RouterP99 = pct(rp.lat, .5), pct(rp.lat, .99)
	row.AddedP50, row.AddedP99 = row.RouterP50-row.DirectP50, row.RouterP99-row.DirectP99
	row.DirectRPS, row.RouterRPS = dp.rps(), rp.rps()
	row.RouterCPU = perReq(cpu, len(rp.lat))
	return row
}

type phase struct {
	lat     []time.Duration
	elapsed time.Duration
	errors  int
}

func (p *phase) add(q phase) {
	p.lat, p.elapsed, p.errors = append(p.lat, q.lat...), p.elapsed+q.elapsed, p.errors+q.errors
}

// recorder returns what adds one request's latency or failure to p, from
// any goroutine.
func (p *phase) recorder() func(time.Duration, bool) {
	var mu sync.Mutex
	return func(l time.Duration, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if ok {
			p.lat = append(p.lat, l)
		} else {
			p.errors++
		}
	}
}

func (p phase) rps() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(len(p.lat)) / p.elapsed.Seconds()
}

func do(c *http.Client, url, body string, stream bool, engineTime time.Duration) (time.Duration, bool) {
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("X-Stream", "1")
	}
	if engineTime > 0 {
		req.Header.Set("X-Engine-Time", engineTime.String())
	}
	t0 := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return 0, false
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return time.Since(t0), res.StatusCode == http.StatusOK
}

// openLoop sends at a fixed rate regardless of responses.
func openLoop(c *http.Client, base func(int) string, body string, stream bool, rate float64, d time.Duration) phase {
	var p phase
	record := p.recorder()
	p.elapsed = paceOpen(rate, d, func(i int, _ time.Time) { record(do(c, base(i), body, stream, 0)) })
	return p
}

func closedLoop(c *http.Client, base func(int) string, body string, conc int, engineTime, d time.Duration) phase {
	var p phase
	record := p.recorder()
	// Clients of slow engines start spread over one engine time, as users
	// do; started together they would arrive in bursts.
	p.elapsed = paceClosed(conc, d, engineTime, func(i int) { record(do(c, base(i), body, false, engineTime)) })
	return p
}

// paceOpen calls send for requests 0, 1, ... at a fixed rate for d, each in
// its own goroutine whatever the earlier ones are doing (at: its intended
// send time), and returns how long the phase took.
func paceOpen(rate float64, d time.Duration, send func(i int, at time.Time)) time.Duration {
	var wg sync.WaitGroup
	n := int(rate * d.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			send(i, at)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// paceClosed runs conc clients for d, client w sending requests w, w+conc,
// ... one after the other, starting after w/conc of spread, and returns how
// long the phase took.
func paceClosed(conc int, d, spread time.Duration, send func(i int)) time.Duration {
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(w) * spread / time.Duration(conc))
			for i := w; time.Now().Before(deadline); i += conc {
				send(i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func size(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// Markdown renders the result as tables.
func Markdown(r *OverheadResult, o OverheadOptions) string {
	var b strings.Builder
	where := "in their own child process, so that the direct path crosses processes as it does in a deployment"
	if len(o.EngineCommand) == 0 {
		where = "in the benchmark process, next to the clients"
	}
	procs := "all cores"
	if o.RouterProcs > 0 {
		procs = fmt.Sprintf("GOMAXPROCS=%d", o.RouterProcs)
	}
	fmt.Fprintf(&b, "%d echo engines %s; the router (%s) runs in a child process, whose CPU time (/proc) is divided by the routed requests. Direct and routed phases alternate (twice each, %s in total per scenario).\n\n", o.Engines, where, procs, o.Duration)
	b.WriteString("| scenario | direct p50 | direct p99 | router p50 | router p99 | added p50 | added p99 | direct req/s | router req/s | router CPU/req |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %.0f | %s |\n", r.Scenario, ms(r.DirectP50), ms(r.DirectP99), ms(r.RouterP50), ms(r.RouterP99), ms(r.AddedP50), ms(r.AddedP99), r.DirectRPS, r.RouterRPS, us(r.RouterCPU))
	}
	if len(r.Search) == 0 {
		return b.String()
	}
	b.WriteString("\nMaximum sustainable rate (100 B prompts, non-streaming, open loop through the router; sustained = ≥97 % of the offered rate completed within the step, no errors):\n\n| offered req/s | achieved req/s | p50 | p99 | router CPU/req | sustained |\n|---|---|---|---|---|---|\n")
	for _, p := range r.Search {
		fmt.Fprintf(&b, "| %.0f | %.0f | %s | %s | %s | %v |\n", p.Offered, p.Achieved, ms(p.P50), ms(p.P99), us(p.RouterCPU), p.Sustained)
	}
	fmt.Fprintf(&b, "\nMaximum sustained rate: **%.0f req/s**.\n", r.MaxRate)
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }
