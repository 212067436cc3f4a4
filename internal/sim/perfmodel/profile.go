package perfmodel

import (
	"fmt"
	"sort"
	"time"
)

// Profile is a model served on an accelerator set, with the efficiency
// factors that turn datasheet peaks into achieved step times, and the engine
// defaults that go with the pair.
type Profile struct {
	Name           string
	Description    string
	Model          Model
	GPU            Accelerator
	TensorParallel int

	// ComputeEfficiency is the achieved fraction of peak FLOP/s in large
	// prefill steps (model FLOPs utilisation).
	ComputeEfficiency float64
	// BandwidthEfficiency is the achieved fraction of HBM bandwidth in
	// decode steps (model bandwidth utilisation).
	BandwidthEfficiency float64
	// StepOverhead is the fixed cost of a step: scheduling, input
	// preparation, kernel launches, sampling.
	StepOverhead time.Duration
	// AllReduceLatency is the fixed latency of one tensor-parallel
	// all-reduce.
	AllReduceLatency time.Duration

	GPUMemoryUtilization float64
	ActivationReserveGiB float64 // per GPU: activations, CUDA graphs, workspace

	MaxModelLen         int
	MaxNumSeqs          int
	MaxNumBatchedTokens int

	// KVLinkGBps is the prefill-to-decode KV transfer bandwidth (RDMA).
	KVLinkGBps         float64
	KVTransferOverhead time.Duration

	// References are the published measurements the efficiency factors
	// were calibrated against.
	References []Reference
}

// Reference is one published measurement used for calibration.
type Reference struct {
	Quantity  Quantity
	Condition Condition
	Value     float64 // seconds for latencies, tokens/s for throughput
	Source    string
}

// Quantity names what a Reference measures.
type Quantity string

// The calibrated quantities.
const (
	QuantityTTFT       Quantity = "ttft"        // idle engine, cold cache
	QuantityITL        Quantity = "itl"         // decode step at a batch size
	QuantityThroughput Quantity = "output_tput" // output tokens/s at saturation
)

// Condition is the workload point of a Reference.
type Condition struct {
	PromptTokens int
	OutputTokens int
	Batch        int
}

// Validate reports a profile that cannot price a step.
func (p *Profile) Validate() error {
	switch {
	case p.Model.Params <= 0 || p.Model.Layers <= 0 || p.Model.KVHeads <= 0 || p.Model.HeadDim <= 0:
		return fmt.Errorf("profile %q: model shape incomplete", p.Name)
	case p.GPU.DenseTFLOPS <= 0 || p.GPU.HBMGBps <= 0 || p.GPU.MemoryGiB <= 0:
		return fmt.Errorf("profile %q: accelerator datasheet incomplete", p.Name)
	case p.TensorParallel < 1:
		return fmt.Errorf("profile %q: tensor parallel must be >= 1", p.Name)
	case p.ComputeEfficiency <= 0 || p.ComputeEfficiency > 1 || p.BandwidthEfficiency <= 0 || p.BandwidthEfficiency > 1:
		return fmt.Errorf("profile %q: efficiencies must be in (0,1]", p.Name)
	}
	return nil
}

// Catalog is a set of named profiles.
type Catalog map[string]Profile

// Lookup returns a copy of the named profile.
func (c Catalog) Lookup(name string) (Profile, error) {
	p, ok := c[name]
	if !ok {
		return Profile{}, fmt.Errorf("unknown profile %q (known: %v)", name, c.Names())
	}
	return p, nil
}

// Names lists the profiles in order.
func (c Catalog) Names() []string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
