package modelbooster

import (
	"encoding/json"
	"fmt"
	"strings"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// MaxLoRAAdapters is the most adapters a ModelRoute names (its CRD limit).
const MaxLoRAAdapters = 10

// loraKey is the engine argument that lists the LoRA adapters to load at
// start-up: vLLM's --lora-modules, SGLang's --lora-paths.
func loraKey(typ workloadv1alpha1.ModelBackendType) string {
	if typ == workloadv1alpha1.ModelBackendTypeSGLang {
		return "lora-paths"
	}
	return "lora-modules"
}

// LoRAAdapters returns the adapter names a worker's config loads at
// start-up, in order. Each entry is "name=path", a JSON object with a
// "name" (vLLM's JSON form), or for SGLang a bare path (its own name); a
// string value may hold several entries separated by spaces.
func LoRAAdapters(typ workloadv1alpha1.ModelBackendType, c *EngineConfig) ([]string, error) {
	key := loraKey(typ)
	raw, ok := c.values[key]
	if !ok {
		return nil, nil
	}
	var entries []string
	var s string
	var list []json.RawMessage
	switch {
	case json.Unmarshal(raw, &s) == nil:
		if strings.HasPrefix(strings.TrimSpace(s), "{") {
			entries = []string{s}
		} else {
			entries = strings.Fields(s)
		}
	case json.Unmarshal(raw, &list) == nil:
		for _, e := range list {
			if json.Unmarshal(e, &s) == nil {
				entries = append(entries, s)
			} else {
				entries = append(entries, string(e))
			}
		}
	default:
		return nil, fmt.Errorf("must be a string or a list of adapters")
	}
	var names []string
	for _, e := range entries {
		name, err := adapterName(e)
		if err != nil {
			return nil, err
		}
		if !contains(names, name) {
			names = append(names, name)
		}
	}
	return names, nil
}

func adapterName(entry string) (string, error) {
	entry = strings.TrimSpace(entry)
	if strings.HasPrefix(entry, "{") {
		var m struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(entry), &m); err != nil || m.Name == "" {
			return "", fmt.Errorf("adapter %s: a JSON adapter needs a \"name\"", entry)
		}
		return m.Name, nil
	}
	name, _, _ := strings.Cut(entry, "=")
	if name == "" {
		return "", fmt.Errorf("adapter %q: the name before '=' is empty", entry)
	}
	return name, nil
}
