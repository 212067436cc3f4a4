// Package perfmodel prices one engine step on a model and accelerator pair
// with a roofline: prefill is bound by matrix FLOPs, decode by the bytes of
// weights and KV cache read from HBM, each at a calibrated efficiency, plus a
// fixed per-step overhead.
package perfmodel

// Model is the shape of a dense decoder-only transformer, as published in
// its config.json.
type Model struct {
	Name         string
	Params       float64 // total parameters, including embeddings
	Layers       int
	Hidden       int
	Heads        int
	KVHeads      int
	HeadDim      int
	Vocab        int
	MaxPositions int
	DTypeBytes   float64 // 2 for bf16 weights and KV cache
	Source       string  // where the shape comes from
}

// WeightBytes is the size of the weights in accelerator memory.
func (m Model) WeightBytes() float64 { return m.Params * m.DTypeBytes }

// KVBytesPerToken is the K and V cache one token occupies across all layers.
func (m Model) KVBytesPerToken() float64 {
	return 2 * float64(m.Layers*m.KVHeads*m.HeadDim) * m.DTypeBytes
}

// linearFLOPsPerToken is the matmul work of one token through every weight
// (two FLOPs per multiply-accumulate).
func (m Model) linearFLOPsPerToken() float64 { return 2 * m.Params }

// attentionFLOPsPerContextToken is the QK^T plus AV work one new token does
// against one earlier token of its context, across all layers.
func (m Model) attentionFLOPsPerContextToken() float64 {
	return 4 * float64(m.Layers*m.Heads*m.HeadDim)
}
