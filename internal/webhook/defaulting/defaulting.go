// Package defaulting builds mutating webhooks that fill absent fields of the
// raw object. Working on the raw JSON, not a typed round trip, means the
// response patches only what was defaulted: durations, quantities and every
// other field come back exactly as the user wrote them.
package defaulting

import (
	"context"
	"encoding/json"
	"net/http"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Func fills defaults into obj, the object as a JSON map.
type Func func(obj map[string]any)

// Handler returns an admission handler that applies fn to the request's object.
func Handler(fn Func) admission.Handler {
	return admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
		var obj map[string]any
		if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		fn(obj)
		out, err := json.Marshal(obj)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.PatchResponseFromRaw(req.Object.Raw, out)
	})
}

// Map returns obj[path...] as an object, creating the objects on the way
// when create is true; nil when absent (or not an object) and create is false.
func Map(obj map[string]any, create bool, path ...string) map[string]any {
	cur := obj
	for _, k := range path {
		next, ok := cur[k].(map[string]any)
		if !ok {
			if _, exists := cur[k]; exists || !create {
				return nil
			}
			next = map[string]any{}
			cur[k] = next
		}
		cur = next
	}
	return cur
}

// SetIfAbsent sets m[key] = v unless key is present.
func SetIfAbsent(m map[string]any, key string, v any) {
	if m == nil {
		return
	}
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}
