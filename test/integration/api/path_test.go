package api

import (
	"fmt"
	"testing"
)

// set writes value at path in obj, where path elements are map keys
// (string) or list indices (int); a nil value deletes the key.
func set(t *testing.T, obj map[string]any, value any, path ...any) {
	t.Helper()
	var cur any = obj
	for i, p := range path {
		last := i == len(path)-1
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %v: %v is not an object", path[:i+1], cur)
			}
			if last {
				if value == nil {
					delete(m, k)
				} else {
					m[k] = value
				}
				return
			}
			if _, ok := m[k]; !ok {
				m[k] = map[string]any{}
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("path %v: no index %d", path[:i+1], k)
			}
			if last {
				l[k] = value
				return
			}
			cur = l[k]
		default:
			t.Fatalf("bad path element %v", p)
		}
	}
}

// get reads the value at path in obj.
func get(obj map[string]any, path ...any) (any, error) {
	var cur any = obj
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("path %v: not an object", path[:i+1])
			}
			v, ok := m[k]
			if !ok {
				return nil, fmt.Errorf("path %v: missing", path[:i+1])
			}
			cur = v
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil, fmt.Errorf("path %v: no index %d", path[:i+1], k)
			}
			cur = l[k]
		}
	}
	return cur, nil
}

// contains reports where got lacks or differs from a value of want; every
// field of the manifest must come back as written (nothing pruned or changed).
func contains(want, got any, at string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %v", at, got)}
		}
		var diffs []string
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing (pruned?)", at, k))
				continue
			}
			diffs = append(diffs, contains(v, gv, at+"."+k)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d items, got %v", at, len(w), got)}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, contains(w[i], g[i], fmt.Sprintf("%s[%d]", at, i))...)
		}
		return diffs
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s: want %v, got %v", at, want, got)}
		}
		return nil
	}
}
