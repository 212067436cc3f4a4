package perfmodel

import "time"

// Profile names.
const (
	ProfileLlama8BH100    = "llama-3.1-8b-h100"
	ProfileQwen32B2xH100  = "qwen2.5-32b-2xh100"
	ProfileQwen7BA10G     = "qwen2.5-7b-a10g"
	ProfileLlama8BA100    = "llama-3.1-8b-a100-40gb"
	DefaultProfile        = ProfileLlama8BH100
	sourceLlamaConfig     = "huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json"
	sourceQwen32Config    = "huggingface.co/Qwen/Qwen2.5-32B-Instruct/blob/main/config.json"
	sourceQwen7Config     = "huggingface.co/Qwen/Qwen2.5-7B-Instruct/blob/main/config.json"
	sourceH100Datasheet   = "nvidia.com/en-us/data-center/h100 (SXM: 989 TFLOPS bf16 dense, 3.35 TB/s, 80 GB)"
	sourceA100Datasheet   = "nvidia.com/en-us/data-center/a100 (SXM 40GB: 312 TFLOPS bf16 dense, 1,555 GB/s)"
	sourceA10Datasheet    = "nvidia.com/en-us/data-center/products/a10-gpu (A10: 125 TFLOPS bf16 dense, 600 GB/s, 24 GB; AWS g5 A10G)"
	sourceMorphBenchmarks = "morphllm.com/vllm-benchmarks (Llama 3.1 8B BF16 1xH100 ~12,500 tok/s; workload unstated)"
	sourceYobitelH100     = "yobitelcomm.github.io/bench/recipes/concurrency-sweep (Llama-3.1-8B-Instruct, H100-80GB HBM3, vLLM 0.21, fp16: TPOT p50 6.48 ms at C=1, 6.59 ms at C=4)"
	sourceMusgraveA100    = "johnmusgrave.com/p/vllm-throughput-latency-sweep-on (Llama-3.1-8B, A100 40GB, vLLM 0.23: ~75 tok/s at C=1, 77% of HBM roofline)"
)

// Accelerators from vendor datasheets.
var (
	h100SXM  = Accelerator{Name: "H100-SXM-80GB", DenseTFLOPS: 989, HBMGBps: 3350, MemoryGiB: 79.1, InterconnGBs: 450, Source: sourceH100Datasheet}
	a100_40G = Accelerator{Name: "A100-SXM-40GB", DenseTFLOPS: 312, HBMGBps: 1555, MemoryGiB: 39.4, InterconnGBs: 300, Source: sourceA100Datasheet}
	a10G     = Accelerator{Name: "A10G-24GB", DenseTFLOPS: 125, HBMGBps: 600, MemoryGiB: 22.0, InterconnGBs: 32, Source: sourceA10Datasheet}
)

// Models from their published config.json (parameter counts from the model
// cards).
var (
	llama31_8B = Model{Name: "meta-llama/Llama-3.1-8B-Instruct", Params: 8.03e9, Layers: 32, Hidden: 4096,
		Heads: 32, KVHeads: 8, HeadDim: 128, Vocab: 128256, MaxPositions: 131072, DTypeBytes: 2, Source: sourceLlamaConfig}
	qwen25_32B = Model{Name: "Qwen/Qwen2.5-32B-Instruct", Params: 32.76e9, Layers: 64, Hidden: 5120,
		Heads: 40, KVHeads: 8, HeadDim: 128, Vocab: 152064, MaxPositions: 32768, DTypeBytes: 2, Source: sourceQwen32Config}
	qwen25_7B = Model{Name: "Qwen/Qwen2.5-7B-Instruct", Params: 7.62e9, Layers: 28, Hidden: 3584,
		Heads: 28, KVHeads: 4, HeadDim: 128, Vocab: 152064, MaxPositions: 32768, DTypeBytes: 2, Source: sourceQwen7Config}
)

// Builtin returns the named profiles shipped with the simulator. It builds
// a fresh map each call so callers may add their own.
func Builtin() Catalog {
	return Catalog{
		ProfileLlama8BH100: {
			Name:        ProfileLlama8BH100,
			Description: "Llama-3.1-8B-Instruct, bf16, one H100 SXM 80GB, vLLM V1 defaults",
			Model:       llama31_8B, GPU: h100SXM, TensorParallel: 1,
			ComputeEfficiency: 0.55, BandwidthEfficiency: 0.80,
			StepOverhead: 500 * time.Microsecond, AllReduceLatency: 0,
			GPUMemoryUtilization: 0.9, ActivationReserveGiB: 4,
			MaxModelLen: 32768, MaxNumSeqs: 256, MaxNumBatchedTokens: 8192,
			KVLinkGBps: 25, KVTransferOverhead: 2 * time.Millisecond,
			References: []Reference{
				{QuantityITL, Condition{Batch: 1}, 0.00648, sourceYobitelH100},
				{QuantityITL, Condition{Batch: 4}, 0.00659, sourceYobitelH100},
				{QuantityThroughput, Condition{PromptTokens: 256, OutputTokens: 256}, 12500, sourceMorphBenchmarks},
			},
		},
		ProfileLlama8BA100: {
			Name:        ProfileLlama8BA100,
			Description: "Llama-3.1-8B-Instruct, bf16, one A100 40GB: the pair with a published single-stream measurement",
			Model:       llama31_8B, GPU: a100_40G, TensorParallel: 1,
			ComputeEfficiency: 0.55, BandwidthEfficiency: 0.80,
			StepOverhead:         500 * time.Microsecond,
			GPUMemoryUtilization: 0.9, ActivationReserveGiB: 3,
			MaxModelLen: 32768, MaxNumSeqs: 256, MaxNumBatchedTokens: 8192,
			KVLinkGBps: 25, KVTransferOverhead: 2 * time.Millisecond,
			References: []Reference{
				{QuantityITL, Condition{Batch: 1}, 1.0 / 75, sourceMusgraveA100},
			},
		},
		ProfileQwen32B2xH100: {
			Name:        ProfileQwen32B2xH100,
			Description: "Qwen2.5-32B-Instruct, bf16, two H100 SXM with tensor parallelism over NVLink",
			Model:       qwen25_32B, GPU: h100SXM, TensorParallel: 2,
			ComputeEfficiency: 0.50, BandwidthEfficiency: 0.75,
			StepOverhead: 1 * time.Millisecond, AllReduceLatency: 8 * time.Microsecond,
			GPUMemoryUtilization: 0.9, ActivationReserveGiB: 4,
			MaxModelLen: 32768, MaxNumSeqs: 256, MaxNumBatchedTokens: 8192,
			KVLinkGBps: 50, KVTransferOverhead: 2 * time.Millisecond,
		},
		ProfileQwen7BA10G: {
			Name:        ProfileQwen7BA10G,
			Description: "Qwen2.5-7B-Instruct, bf16, one A10G 24GB (AWS g5)",
			Model:       qwen25_7B, GPU: a10G, TensorParallel: 1,
			ComputeEfficiency: 0.45, BandwidthEfficiency: 0.80,
			StepOverhead:         1 * time.Millisecond,
			GPUMemoryUtilization: 0.9, ActivationReserveGiB: 1.5,
			MaxModelLen: 32768, MaxNumSeqs: 128, MaxNumBatchedTokens: 2048,
			KVLinkGBps: 12.5, KVTransferOverhead: 3 * time.Millisecond,
		},
	}
}
