package perfmodel

// Accelerator holds the datasheet numbers of one GPU.
type Accelerator struct {
	Name         string
	DenseTFLOPS  float64 // bf16 dense tensor-core peak, TFLOP/s
	HBMGBps      float64 // memory bandwidth, GB/s
	MemoryGiB    float64
	InterconnGBs float64 // per-GPU tensor-parallel link bandwidth, GB/s
	Source       string  // datasheet
}
