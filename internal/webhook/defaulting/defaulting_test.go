package defaulting

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func TestHandlerPatchesOnlyDefaults(t *testing.T) {
	raw := []byte(`{"spec":{"period":"60s","quantity":"1000m","nested":{"keep":1}}}`)
	h := Handler(func(obj map[string]any) {
		SetIfAbsent(Map(obj, true, "spec", "nested"), "keep", 2)
		SetIfAbsent(Map(obj, true, "spec", "added"), "x", "y")
	})
	resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed {
		t.Fatalf("denied: %v", resp.Result)
	}
	if len(resp.Patches) != 1 || resp.Patches[0].Path != "/spec/added" {
		b, _ := json.Marshal(resp.Patches)
		t.Fatalf("want one patch adding /spec/added, got %s", b)
	}
}

func TestMapDoesNotCreateWhenAsked(t *testing.T) {
	obj := map[string]any{"a": "scalar"}
	if Map(obj, false, "b") != nil || Map(obj, true, "a", "c") != nil {
		t.Fatal("Map must not create under a non-object or when create is false")
	}
	if _, ok := obj["b"]; ok {
		t.Fatal("Map created a key with create=false")
	}
}
