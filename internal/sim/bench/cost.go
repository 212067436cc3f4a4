// Package bench measures the simulator: its own CPU cost when serving a
// fleet at real-time speed, and the fidelity of its performance model
// against published engine measurements.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/sim"
)

// CostOptions shape the cost benchmark.
type CostOptions struct {
	Engines      int
	Concurrency  int
	OutputTokens int
	Rounds       int // requests each client sends back to back
	TimeScale    float64
	Profile      string
	// ClientCommand, when set, runs the streaming clients in a child
	// process (the command plus LoadFlags), so the simulator's CPU is
	// measured alone. Empty runs them in this process.
	ClientCommand []string
}

// DefaultCostOptions is the target: 16 engines, 400 concurrent
// streams of 256 tokens, real time.
func DefaultCostOptions() CostOptions {
	return CostOptions{Engines: 16, Concurrency: 400, OutputTokens: 256, Rounds: 2, TimeScale: 1}
}

// CostResult is what one run measured. CPU is this process: the engines
// and their HTTP servers, plus the clients when they run in-process.
type CostResult struct {
	Options       CostOptions
	Wall          time.Duration
	CPU           time.Duration
	ClientCPU     time.Duration // the child client process, when used
	Requests      int64
	Failed        int64
	Tokens        int64
	AllocBytes    uint64
	SimulatedTime float64 // simulated seconds the busiest engine advanced
}

// CoresUsed is CPU time over wall time.
func (r CostResult) CoresUsed() float64 { return r.CPU.Seconds() / r.Wall.Seconds() }

// CPUPerToken is the CPU spent per streamed token.
func (r CostResult) CPUPerToken() time.Duration {
	if r.Tokens == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Tokens)
}

// RunCost starts the fleet, drives it with streaming clients and measures
// process CPU with getrusage around the load.
func RunCost(ctx context.Context, o CostOptions) (CostResult, error) {
	cfgs := make([]sim.Config, o.Engines)
	for i := range cfgs {
		cfgs[i] = sim.Config{TimeScale: o.TimeScale, Profile: o.Profile, Mode: sim.ModeRandom, Seed: int64(i + 1)}
	}
	fleet, err := sim.StartLocal(ctx, logr.Discard(), cfgs...)
	if err != nil {
		return CostResult{}, err
	}
	defer func() { _ = fleet.Close() }()
	load := LoadOptions{URLs: make([]string, o.Engines), Model: fleet.Engines[0].Config().ServedModelNames[0],
		Concurrency: o.Concurrency, OutputTokens: o.OutputTokens, Rounds: o.Rounds}
	for i := range load.URLs {
		load.URLs[i] = fleet.URL(i)
	}
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	cpu0, child0 := processCPU(syscall.RUSAGE_SELF), processCPU(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	var lr LoadResult
	if len(o.ClientCommand) > 0 {
		lr, err = runLoadChild(ctx, o.ClientCommand, load)
	} else {
		lr, err = RunLoad(ctx, load)
	}
	if err != nil {
		return CostResult{}, err
	}
	wall := time.Since(start)
	cpu, childCPU := processCPU(syscall.RUSAGE_SELF)-cpu0, processCPU(syscall.RUSAGE_CHILDREN)-child0
	runtime.ReadMemStats(&ms1)
	var simTime float64
	for _, e := range fleet.Engines {
		simTime = max(simTime, e.Stats().SimTime)
	}
	return CostResult{Options: o, Wall: wall, CPU: cpu, ClientCPU: childCPU, Requests: lr.Requests, Failed: lr.Failed,
		Tokens: lr.Tokens, AllocBytes: ms1.TotalAlloc - ms0.TotalAlloc, SimulatedTime: simTime}, nil
}

// LoadOptions describe the streaming clients.
type LoadOptions struct {
	URLs         []string `json:"urls"`
	Model        string   `json:"model"`
	Concurrency  int      `json:"concurrency"`
	OutputTokens int      `json:"outputTokens"`
	Rounds       int      `json:"rounds"`
}

// LoadResult counts what the clients received.
type LoadResult struct {
	Requests int64 `json:"requests"`
	Failed   int64 `json:"failed"`
	Tokens   int64 `json:"tokens"`
}

// RunLoad runs Concurrency closed-loop streaming clients spread over the
// URLs, each sending Rounds requests that generate exactly OutputTokens.
func RunLoad(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if len(o.URLs) == 0 || o.Concurrency <= 0 {
		return LoadResult{}, fmt.Errorf("load needs URLs and a positive concurrency")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}
	var tokens, requests, failed atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < o.Concurrency; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := o.URLs[c%len(o.URLs)] + "/v1/chat/completions"
			body := fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":%d,"ignore_eos":true,"messages":[{"role":"user","content":"client %d asks a short question about continuous batching"}]}`,
				o.Model, o.OutputTokens, c)
			for r := 0; r < o.Rounds; r++ {
				n, err := streamOnce(ctx, client, url, body)
				requests.Add(1)
				tokens.Add(int64(n))
				if err != nil || n != o.OutputTokens {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return LoadResult{Requests: requests.Load(), Failed: failed.Load(), Tokens: tokens.Load()}, nil
}

// runLoadChild runs the clients in a child process that reads LoadOptions
// as JSON on stdin and writes a LoadResult as JSON on stdout.
func runLoadChild(ctx context.Context, command []string, o LoadOptions) (LoadResult, error) {
	in, err := json.Marshal(o)
	if err != nil {
		return LoadResult{}, err
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return LoadResult{}, fmt.Errorf("load client: %w", err)
	}
	var r LoadResult
	if err := json.Unmarshal(out, &r); err != nil {
		return LoadResult{}, fmt.Errorf("load client output: %w", err)
	}
	return r, nil
}

var contentMarker = []byte(`"delta":{"content":`)

// streamOnce sends one streaming request and counts content chunks. It
// reads raw lines: the client must cost little next to the server.
func streamOnce(ctx context.Context, c *http.Client, url, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	r := bufio.NewReaderSize(resp.Body, 16<<10)
	n := 0
	for {
		line, err := r.ReadSlice('\n')
		if bytes.Contains(line, contentMarker) && !bytes.Contains(line, []byte(`"content":""`)) {
			n++
		}
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			return n, err
		}
	}
}

// processCPU is user plus system time of this process (RUSAGE_SELF) or of
// its waited-for children (RUSAGE_CHILDREN).
func processCPU(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FormatCost renders a result as a small table.
func FormatCost(r CostResult) string {
	var b strings.Builder
	o := r.Options
	clients := "in-process"
	if r.ClientCPU > 0 {
		clients = fmt.Sprintf("%.2fs", r.ClientCPU.Seconds())
	}
	fmt.Fprintf(&b, "| engines | concurrent streams | output tokens | requests (failed) | wall | simulated | simulator CPU | cores used | CPU per token | alloc per token | client CPU |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	allocPerTok := uint64(0)
	if r.Tokens > 0 {
		allocPerTok = r.AllocBytes / uint64(r.Tokens)
	}
	fmt.Fprintf(&b, "| %d | %d | %d | %d (%d) | %.2fs | %.2fs | %.2fs | %.3f | %s | %d B | %s |\n",
		o.Engines, o.Concurrency, o.OutputTokens, r.Requests, r.Failed, r.Wall.Seconds(), r.SimulatedTime,
		r.CPU.Seconds(), r.CoresUsed(), r.CPUPerToken(), allocPerTok, clients)
	return b.String()
}
