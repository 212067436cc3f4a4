package bench

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kthena/kthena/internal/sim/engine"
	"github.com/kthena/kthena/internal/sim/kvcache"
	"github.com/kthena/kthena/internal/sim/perfmodel"
)

// FidelityRow is one simulated quantity, with the published figure it was
// calibrated on when there is one.
type FidelityRow struct {
	Profile   string
	Quantity  string
	Condition string
	Simulated float64
	Unit      string
	Published float64 // 0 when none
	Source    string
}

// Ratio is simulated over published, 0 without a reference.
func (r FidelityRow) Ratio() float64 {
	if r.Published == 0 {
		return 0
	}
	return r.Simulated / r.Published
}

// itlRecorder collects inter-token latencies.
type itlRecorder struct {
	mu   sync.Mutex
	itls []float64
}

func (r *itlRecorder) Step(engine.StepStats)        {}
func (r *itlRecorder) FirstToken(float64)           {}
func (r *itlRecorder) Finished(engine.RequestStats) {}
func (r *itlRecorder) Token(v float64) {
	r.mu.Lock()
	r.itls = append(r.itls, v)
	r.mu.Unlock()
}

func (r *itlRecorder) median() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.itls) == 0 {
		return 0
	}
	s := append([]float64(nil), r.itls...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// newEngine builds a virtual-time engine for one measurement: requests
// submitted before start arrive together at simulated time zero.
func newEngine(p *perfmodel.Profile, obs engine.Observer) (*engine.Engine, error) {
	return engine.New(engine.Options{Profile: p, NumBlocks: p.KVCacheBlocks(16), BlockSize: 16,
		MaxNumSeqs: p.MaxNumSeqs, MaxNumBatchedTokens: p.MaxNumBatchedTokens, PrefixCaching: true, MaxLoRAs: 1,
		Virtual: true, Hasher: kvcache.NewHasher(""), Observer: obs})
}

func runEngine(ctx context.Context, p *perfmodel.Profile, obs engine.Observer) (*engine.Engine, error) {
	e, err := newEngine(p, obs)
	if err != nil {
		return nil, err
	}
	go e.Run(ctx)
	return e, nil
}

func prompt(n, salt int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = (i*7919 + salt*104729) % 100000
	}
	return out
}

func waitAll(ctx context.Context, streams []*engine.Stream) ([]engine.Progress, error) {
	out := make([]engine.Progress, len(streams))
	for i, s := range streams {
		p, ok := s.Wait(ctx)
		if !ok {
			return nil, ctx.Err()
		}
		out[i] = p
	}
	return out, nil
}

// RunFidelity measures every built-in profile.
func RunFidelity(ctx context.Context) ([]FidelityRow, error) {
	var rows []FidelityRow
	cat := perfmodel.Builtin()
	for _, name := range cat.Names() {
		p, _ := cat.Lookup(name)
		r, err := profileRows(ctx, &p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

func profileRows(ctx context.Context, p *perfmodel.Profile) ([]FidelityRow, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ref := func(q perfmodel.Quantity, c perfmodel.Condition) (float64, string) {
		for _, r := range p.References {
			if r.Quantity == q && r.Condition == c {
				return r.Value, r.Source
			}
		}
		return 0, ""
	}
	var rows []FidelityRow

	// TTFT against prompt length, cold and with all but 128 tokens cached.
	for i, n := range []int{256, 1024, 4096, 16384} {
		e, err := runEngine(ctx, p, nil)
		if err != nil {
			return nil, err
		}
		base := prompt(n, i)
		s, err := e.Submit(&engine.Request{Prompt: base, Output: []int{1}, Finish: engine.FinishLength})
		if err != nil {
			return nil, err
		}
		cold, err := waitAll(ctx, []*engine.Stream{s})
		if err != nil {
			return nil, err
		}
		warmPrompt := append(append([]int{}, base[:n-128]...), prompt(128, 99)...)
		s, err = e.Submit(&engine.Request{Prompt: warmPrompt, Output: []int{1}, Finish: engine.FinishLength})
		if err != nil {
			return nil, err
		}
		warm, err := waitAll(ctx, []*engine.Stream{s})
		if err != nil {
			return nil, err
		}
		pub, src := ref(perfmodel.QuantityTTFT, perfmodel.Condition{PromptTokens: n})
		rows = append(rows,
			FidelityRow{p.Name, "TTFT cold", fmt.Sprintf("prompt %d", n), ms(cold[0].FirstToken - cold[0].Arrival), "ms", ms(pub), src},
			FidelityRow{p.Name, "TTFT cached prefix", fmt.Sprintf("prompt %d, %d cached", n, warm[0].CachedTokens), ms(warm[0].FirstToken - warm[0].Arrival), "ms", 0, ""})
	}

	// Decode step time against batch size.
	for _, b := range []int{1, 4, 16, 64, 256} {
		if b > p.MaxNumSeqs {
			continue
		}
		rec := &itlRecorder{}
		e, err := newEngine(p, rec)
		if err != nil {
			return nil, err
		}
		var streams []*engine.Stream
		for i := 0; i < b; i++ {
			s, err := e.Submit(&engine.Request{Prompt: prompt(512, 1000+i), Output: prompt(64, i), Finish: engine.FinishLength})
			if err != nil {
				return nil, err
			}
			streams = append(streams, s)
		}
		go e.Run(ctx)
		if _, err := waitAll(ctx, streams); err != nil {
			return nil, err
		}
		pub, src := ref(perfmodel.QuantityITL, perfmodel.Condition{Batch: b})
		rows = append(rows, FidelityRow{p.Name, "decode step (ITL)", fmt.Sprintf("batch %d, ctx ~550", b), ms(rec.median()), "ms", ms(pub), src})
	}

	// Output throughput at saturation: a closed burst of 4x max-num-seqs.
	e, err := newEngine(p, nil)
	if err != nil {
		return nil, err
	}
	var streams []*engine.Stream
	n := 4 * p.MaxNumSeqs
	for i := 0; i < n; i++ {
		s, err := e.Submit(&engine.Request{Prompt: prompt(256, 5000+i), Output: prompt(256, i), Finish: engine.FinishLength})
		if err != nil {
			return nil, err
		}
		streams = append(streams, s)
	}
	go e.Run(ctx)
	res, err := waitAll(ctx, streams)
	if err != nil {
		return nil, err
	}
	first, last := math.Inf(1), 0.0
	for _, r := range res {
		first, last = math.Min(first, r.Arrival), math.Max(last, r.Finished)
	}
	tput := float64(n*256) / (last - first)
	pub, src := ref(perfmodel.QuantityThroughput, perfmodel.Condition{PromptTokens: 256, OutputTokens: 256})
	rows = append(rows, FidelityRow{p.Name, "output throughput", fmt.Sprintf("%d requests 256 in / 256 out", n), tput, "tok/s", pub, src})
	return rows, nil
}

func ms(sec float64) float64 { return sec * 1000 }

// FormatFidelity renders the rows as a Markdown table.
func FormatFidelity(rows []FidelityRow) string {
	var b strings.Builder
	b.WriteString("| profile | quantity | condition | simulated | published | ratio | source |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		pub, ratio := "-", "-"
		if r.Published != 0 {
			pub = fmt.Sprintf("%.1f %s", r.Published, r.Unit)
			ratio = fmt.Sprintf("%.2f", r.Ratio())
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f %s | %s | %s | %s |\n", r.Profile, r.Quantity, r.Condition, r.Simulated, r.Unit, pub, ratio, r.Source)
	}
	return b.String()
}
