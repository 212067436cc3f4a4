package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// shipped are the templates upstream ships models for; each must exist.
var shipped = []string{
	"Qwen/Qwen3-8B", "Qwen/Qwen3-32B", "Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen/Qwen3-Coder-30B-A3B-Instruct-PD",
	"deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
}

// TestTemplatesPassAdmission: every template renders with its defaults into
// a ModelBooster the API server's schema and webhooks accept.
func TestTemplatesPassAdmission(t *testing.T) {
	all, err := loadTemplates()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tmpl := range all {
		names[tmpl.Name] = true
		t.Run(tmpl.Name, func(t *testing.T) {
			for _, v := range tmpl.Values {
				if v.Name == "" || v.Description == "" {
					t.Errorf("value %+v is not documented", v)
				}
			}
			out, errOut, code := kthena(t, "create", "manifest", "-t", tmpl.Name, "--dry-run", "--kubeconfig", env.Kubeconfig)
			if code != 0 || !strings.Contains(errOut, "server-side dry run passed") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			obj := parseManifest(t, out)
			if obj.GetKind() != "ModelBooster" || obj.GetNamespace() != "default" || obj.GetName() == "" {
				t.Errorf("rendered %s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
			}
		})
	}
	for _, n := range shipped {
		if !names[n] {
			t.Errorf("template %s is missing", n)
		}
	}
}

// TestCreateManifest creates a ModelBooster for real and finds it with get.
func TestCreateManifest(t *testing.T) {
	ns := namespace(t, "cli-manifest")
	out := kthenaOK(t, "create", "manifest", "-t", "qwen/qwen3-8b", "--name", "my-qwen", "-n", ns, "--set", "replicas=2")
	if out != "modelbooster.workload.serving.volcano.sh/my-qwen created\n" {
		t.Errorf("create printed %q", out)
	}
	y := kthenaOK(t, "get", "mb", "my-qwen", "-n", ns, "-o", "yaml")
	for _, want := range []string{"name: my-qwen", "replicas: 2", "served-model-name: my-qwen", "modelURI: hf://Qwen/Qwen3-8B", "pods: 1"} {
		if !strings.Contains(y, want) {
			t.Errorf("created ModelBooster lacks %q:\n%s", want, y)
		}
	}
	// Creating it again is the API server's AlreadyExists, on one line.
	oneLineError(t, "already exists", "create", "manifest", "-t", "Qwen/Qwen3-8B", "--name", "my-qwen", "-n", ns, "--kubeconfig", env.Kubeconfig)
}

// TestManifestValues: --set overrides -f, which overrides the defaults;
// commas join --set pairs; values keep their YAML types.
func TestManifestValues(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("replicas: 3\ngpus: 4\ncacheURI: pvc://from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := kthena(t, "create", "manifest", "-t", "Qwen/Qwen3-32B", "-f", values,
		"--set", "gpus=8,owner=team-a", "--set", "image=repo/vllm:a,b", "--dry-run", "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "no cluster configured: rendered only") {
		t.Errorf("stderr does not say the manifest was not checked: %q", errOut)
	}
	obj := parseManifest(t, out)
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"spec", "backend", "replicas"}, float64(3)},            // -f over the default 1
		{[]string{"spec", "backend", "cacheURI"}, "pvc://from-file"},     // -f
		{[]string{"spec", "owner"}, "team-a"},                            // --set
		{[]string{"spec", "name"}, "qwen3-32b"},                          // default
		{[]string{"metadata", "name"}, "qwen3-32b"},                      // default
		{[]string{"spec", "backend", "modelURI"}, "hf://Qwen/Qwen3-32B"}, // default
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(obj.Object, c.path...)
		if got != c.want {
			t.Errorf("%s = %#v, want %#v", strings.Join(c.path, "."), got, c.want)
		}
	}
	workers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "backend", "workers")
	w := workers[0].(map[string]any)
	if cfg := w["config"].(map[string]any); cfg["tensor-parallel-size"] != float64(8) { // --set over -f
		t.Errorf("tensor-parallel-size = %#v, want 8", cfg["tensor-parallel-size"])
	}
	if w["image"] != "repo/vllm:a,b" {
		t.Errorf("image = %#v: a comma inside a --set value was split", w["image"])
	}
}

func TestManifestErrors(t *testing.T) {
	state := []string{"--state-dir", t.TempDir()}
	oneLineError(t, `unknown template "Qwen/Qwen9": see kthena get templates`, append([]string{"create", "manifest", "-t", "Qwen/Qwen9", "--dry-run"}, state...)...)
	oneLineError(t, "--template (-t) is required", append([]string{"create", "manifest", "--dry-run"}, state...)...)
	oneLineError(t, `has no value "gpu" (from --set): its values are`, append([]string{"create", "manifest", "-t", "Qwen/Qwen3-8B", "--set", "gpu=2", "--dry-run"}, state...)...)
	oneLineError(t, `--set "replicas": want name=value`, append([]string{"create", "manifest", "-t", "Qwen/Qwen3-8B", "--set", "replicas", "--dry-run"}, state...)...)
	oneLineError(t, "invalid ModelBooster (check the values' types)", append([]string{"create", "manifest", "-t", "Qwen/Qwen3-8B", "--set", "replicas=many", "--dry-run"}, state...)...)
	oneLineError(t, "no such file or directory", append([]string{"create", "manifest", "-t", "Qwen/Qwen3-8B", "-f", "/nonexistent.yaml", "--dry-run"}, state...)...)
	// Admission rejects what the schema allows: a model on a PVC cached elsewhere.
	oneLineError(t, "a pvc:// modelURI must be cached on the same claim", "create", "manifest", "-t", "Qwen/Qwen3-8B",
		"--set", "modelURI=pvc://models/qwen", "--dry-run", "--kubeconfig", env.Kubeconfig)
	oneLineError(t, "no cluster configured", append([]string{"create", "manifest", "-t", "Qwen/Qwen3-8B"}, state...)...)
}

func TestTemplateListing(t *testing.T) {
	golden(t, "get-templates", kthenaOK(t, "get", "templates"))
	golden(t, "describe-template", kthenaOK(t, "describe", "template", "Qwen/Qwen3-Coder-30B-A3B-Instruct-PD"))
	src := kthenaOK(t, "get", "template", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")
	if !strings.Contains(src, "kind: ModelBooster") || !strings.Contains(src, "{{ .maxModelLen }}") {
		t.Errorf("get template does not print the template's source:\n%s", src)
	}
	oneLineError(t, `unknown template "nope"`, "describe", "template", "nope")
}

func parseManifest(t *testing.T, out string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(out), &obj.Object); err != nil {
		t.Fatalf("output is not one YAML object: %v\n%s", err, out)
	}
	return obj
}
