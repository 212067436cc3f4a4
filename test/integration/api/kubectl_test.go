package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKubectlExplain: the schema is published, so kubectl explain documents the roles.
func TestKubectlExplain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.Kubectl(ctx, "explain", "modelserving.spec.template.roles")
	if err != nil {
		t.Fatalf("kubectl explain: %v\n%s", err, out)
	}
	for _, want := range []string{"entryTemplate", "workerReplicas", "DNS-1035"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain output lacks %q:\n%s", want, out)
		}
	}
}

// TestKubectlScale: the scale subresource maps to spec.replicas.
func TestKubectlScale(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obj := sample(t, "workload_v1alpha1_modelserving.yaml")
	ns := namespace(t)
	obj.SetNamespace(ns)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if out, err := env.Kubectl(ctx, "-n", ns, "scale", "modelserving/"+obj.GetName(), "--replicas=3"); err != nil {
		t.Fatalf("kubectl scale: %v\n%s", err, out)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(obj.GroupVersionKind())
	if err := env.Client.Get(ctx, objectKey(obj), got); err != nil {
		t.Fatal(err)
	}
	if r, _ := get(got.Object, "spec", "replicas"); r != int64(3) {
		t.Fatalf("spec.replicas = %v after kubectl scale --replicas=3", r)
	}
	out, err := env.Kubectl(ctx, "-n", ns, "get", "modelservings")
	if err != nil {
		t.Fatalf("kubectl get: %v\n%s", err, out)
	}
	for _, col := range []string{"REPLICAS", "AVAILABLE", "UPDATED", "AGE"} {
		if !strings.Contains(out, col) {
			t.Errorf("kubectl get modelservings lacks column %s:\n%s", col, out)
		}
	}
}
