package modelbooster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// DefaultPort is the engine port when no worker's config sets "port".
const DefaultPort int32 = 8000

// EngineConfig is a worker's config object, decoded. Keys are normalised to
// the engine's flag spelling (underscores become dashes), so
// "max_model_len" and "max-model-len" are one argument.
type EngineConfig struct {
	keys   []string
	values map[string]json.RawMessage
}

// ParseConfig decodes a worker's config: a JSON object of engine arguments.
func ParseConfig(wk *workloadv1alpha1.ModelWorker) (*EngineConfig, error) {
	c := &EngineConfig{values: map[string]json.RawMessage{}}
	raw := bytes.TrimSpace(wk.Config.Raw)
	if len(raw) == 0 || string(raw) == "null" {
		return c, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("must be a JSON object of engine arguments: %w", err)
	}
	for k, v := range m {
		k = strings.ReplaceAll(strings.TrimLeft(k, "-"), "_", "-")
		c.values[k] = v
		c.keys = append(c.keys, k)
	}
	sort.Strings(c.keys) // a map has no order; sorted keys keep the pod template stable
	return c, nil
}

// Has reports whether the config sets key.
func (c *EngineConfig) Has(key string) bool {
	_, ok := c.values[key]
	return ok
}

// String returns key's value as a string (a JSON string or any other JSON
// value as written), or "" when unset.
func (c *EngineConfig) String(key string) string {
	v, ok := c.values[key]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// Port is the config's "port", or 0 when unset.
func (c *EngineConfig) Port() (int32, error) {
	s := c.String("port")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port: must be a port number between 1 and 65535, got %q", s)
	}
	return int32(n), nil
}

// Args renders the config as flags, in key order, leaving out the keys in
// skip (the controller renders those itself). A string value is one
// argument, "" or true a bare flag, false or null no flag, an array one
// argument per element (vLLM's nargs flags such as --lora-modules), an
// object its compact JSON (such as --kv-transfer-config).
func (c *EngineConfig) Args(skip ...string) ([]string, error) {
	var out []string
	for _, k := range c.keys {
		if contains(skip, k) {
			continue
		}
		flag := "--" + k
		v := c.values[k]
		var x any
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		switch t := x.(type) {
		case nil:
		case bool:
			if t {
				out = append(out, flag)
			}
		case string:
			if t == "" {
				out = append(out, flag)
			} else {
				out = append(out, flag, t)
			}
		case json.Number:
			out = append(out, flag, t.String())
		case []any:
			out = append(out, flag)
			for _, e := range t {
				out = append(out, scalar(e))
			}
		default:
			out = append(out, flag, scalar(t))
		}
	}
	return out, nil
}

// scalar renders one value as one argument.
func scalar(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// JSONObject decodes key's value as an object: either an object or a JSON
// string holding one (vLLM takes --kv-transfer-config as a JSON string).
func (c *EngineConfig) JSONObject(key string) (map[string]any, error) {
	v, ok := c.values[key]
	if !ok {
		return nil, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		v = json.RawMessage(s)
	}
	var m map[string]any
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("%s: must be a JSON object: %w", key, err)
	}
	return m, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
