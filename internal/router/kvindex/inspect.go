package kvindex

import (
	"sync"
	"sync/atomic"
)

// Inspector is what the debug endpoint asks a live index (a kvcache-aware
// scorer instance).
type Inspector interface {
	// Size describes the index: entries, bound, per-pod blocks and state.
	Size() Size
	// Probe answers what the index knows of a prompt.
	Probe(p Probe) ProbeResult
}

// Size describes one index.
type Size struct {
	Entries   int              `json:"entries"`
	MaxBlocks int              `json:"maxBlocks"`
	Pods      []PodSize        `json:"pods"`
	Counters  map[string]int64 `json:"counters"`
}

// PodSize is one pod's view.
type PodSize struct {
	Pod       string `json:"pod"`
	Endpoint  string `json:"endpoint,omitempty"`
	Connected bool   `json:"connected"`
	Known     bool   `json:"known"`
	BlockSize int    `json:"blockSize"`
	Blocks    int    `json:"blocks"`
}

// Probe is a prompt to look up: chat messages or a completion prompt.
type Probe struct {
	Model    string         `json:"model,omitempty"`
	LoRA     string         `json:"lora,omitempty"`
	Prompt   string         `json:"prompt,omitempty"`
	Messages []ProbeMessage `json:"messages,omitempty"`
	// Pods restricts the answer (default: every pod of the index).
	Pods []string `json:"pods,omitempty"`
}

// ProbeMessage is one chat message of a probe.
type ProbeMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ProbeResult is the index's answer for a probe.
type ProbeResult struct {
	Tokens int          `json:"tokens"`
	Pods   []ProbeMatch `json:"pods"`
	// Error says why the probe could not be tokenized (a chat template
	// that fails to render).
	Error string `json:"error,omitempty"`
}

// ProbeMatch is one pod's cached prefix of the probe.
type ProbeMatch struct {
	Pod           string  `json:"pod"`
	Known         bool    `json:"known"`
	BlockSize     int     `json:"blockSize"`
	Blocks        int     `json:"blocks"`
	MatchedBlocks int     `json:"matchedBlocks"`
	MatchedTokens int     `json:"matchedTokens"`
	Score         float64 `json:"score"`
}

var (
	inspectorsMu sync.Mutex
	inspectors   = map[uint64]Inspector{}
	inspectorSeq atomic.Uint64
)

// Register makes a live index visible to the debug endpoint until the
// returned function is called. The router's plugins are built by its
// scheduler from configuration, out of the debug listener's reach, so live
// instances announce themselves here.
func Register(in Inspector) (unregister func()) {
	id := inspectorSeq.Add(1)
	inspectorsMu.Lock()
	inspectors[id] = in
	inspectorsMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			inspectorsMu.Lock()
			delete(inspectors, id)
			inspectorsMu.Unlock()
		})
	}
}

// Inspectors returns the live indexes, oldest first.
func Inspectors() []Inspector {
	inspectorsMu.Lock()
	defer inspectorsMu.Unlock()
	ids := make([]uint64, 0, len(inspectors))
	for id := range inspectors {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	out := make([]Inspector, 0, len(ids))
	for _, id := range ids {
		out = append(out, inspectors[id])
	}
	return out
}
