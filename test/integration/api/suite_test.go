// Package api tests the Kthena API as a user meets it: CRDs, CEL rules and
// admission webhooks installed in a real kube-apiserver, driven by manifests.
package api

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/kthena/kthena/internal/testing/controlplane"
	"github.com/kthena/kthena/internal/testing/webhookserver"
)

var env *controlplane.Env

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	var err error
	env, err = controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := webhookserver.Serve(ctx, env); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("KTHENA_TEST_VERBOSE") != "" {
		return -2
	}
	return 1 // errors and warnings only
}

// sample reads a manifest from config/samples.
func sample(t *testing.T, file string) *unstructured.Unstructured {
	data, err := os.ReadFile(filepath.Join(controlplane.RepoRoot(), "config", "samples", file))
	if err == nil {
		obj := &unstructured.Unstructured{}
		if err = yaml.Unmarshal(data, &obj.Object); err == nil {
			return obj
		}
	}
	if t != nil {
		t.Fatalf("reading sample %s: %v", file, err)
	}
	panic(err)
}
