package modelbooster

import (
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

func worker(config string) *workloadv1alpha1.ModelWorker {
	return &workloadv1alpha1.ModelWorker{Type: workloadv1alpha1.ModelWorkerTypeServer, Image: "img", Pods: 1,
		Config: apiextensionsv1.JSON{Raw: []byte(config)}}
}

func TestConfigArgs(t *testing.T) {
	cases := []struct {
		config string
		want   []string
	}{
		{``, nil},
		{`{}`, nil},
		{`{"max_model_len": 4096}`, []string{"--max-model-len", "4096"}},
		{`{"enforce-eager": ""}`, []string{"--enforce-eager"}},
		{`{"trust-remote-code": true, "disable-log-stats": false, "x": null}`, []string{"--trust-remote-code"}},
		{`{"gpu-memory-utilization": 0.95}`, []string{"--gpu-memory-utilization", "0.95"}},
		{`{"lora-modules": ["a=/p/a", {"name": "b", "path": "/p/b"}]}`, []string{"--lora-modules", "a=/p/a", `{"name":"b","path":"/p/b"}`}},
		{`{"kv-transfer-config": {"kv_connector": "NixlConnector", "kv_role": "kv_both"}}`,
			[]string{"--kv-transfer-config", `{"kv_connector":"NixlConnector","kv_role":"kv_both"}`}},
		{`{"b": "2", "a": "1"}`, []string{"--a", "1", "--b", "2"}},
	}
	for _, c := range cases {
		cfg, err := ParseConfig(worker(c.config))
		if err != nil {
			t.Fatalf("%s: %v", c.config, err)
		}
		got, err := cfg.Args()
		if err != nil {
			t.Fatalf("%s: %v", c.config, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: args %q, want %q", c.config, got, c.want)
		}
	}
	if _, err := ParseConfig(worker(`"--x"`)); err == nil {
		t.Error("a non-object config was accepted")
	}
}

func TestLoRAAdapters(t *testing.T) {
	cases := []struct {
		typ     workloadv1alpha1.ModelBackendType
		config  string
		want    []string
		wantErr bool
	}{
		{workloadv1alpha1.ModelBackendTypeVLLM, `{}`, nil, false},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora-modules": "a=/x b=/y"}`, []string{"a", "b"}, false},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora_modules": ["a=/x", "a=/x2"]}`, []string{"a"}, false},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora-modules": "{\"name\": \"j\", \"path\": \"/j\"}"}`, []string{"j"}, false},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora-modules": [{"path": "/j"}]}`, nil, true},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora-modules": 3}`, nil, true},
		{workloadv1alpha1.ModelBackendTypeVLLM, `{"lora-paths": "a=/x"}`, nil, false},
		{workloadv1alpha1.ModelBackendTypeSGLang, `{"lora-paths": ["a=/x", "/adapters/b"]}`, []string{"a", "/adapters/b"}, false},
	}
	for _, c := range cases {
		cfg, err := ParseConfig(worker(c.config))
		if err != nil {
			t.Fatal(err)
		}
		got, err := LoRAAdapters(c.typ, cfg)
		if (err != nil) != c.wantErr {
			t.Fatalf("%s %s: err %v", c.typ, c.config, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %v, want %v", c.typ, c.config, got, c.want)
		}
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"python3", "--x", `{"a":"b"}`, "it's", ""})
	want := `python3 --x '{"a":"b"}' 'it'\''s' ''`
	if got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// TestSGLang covers the SGLang backend, which the CRD's type enum (kept as
// upstream's) does not admit yet, so no integration test can create one.
func TestSGLang(t *testing.T) {
	mb := &workloadv1alpha1.ModelBooster{}
	mb.Name, mb.Namespace = "m", "ns"
	mb.Spec.Backend = workloadv1alpha1.ModelBackend{
		Name: "sg", Type: workloadv1alpha1.ModelBackendTypeSGLang, ModelURI: "hf://Qwen/Qwen2.5-0.5B-Instruct", Replicas: 1,
		Workers: []workloadv1alpha1.ModelWorker{*worker(`{"lora-paths": ["sql=/adapters/sql"], "tp": 2}`)},
	}
	mb.Spec.Backend.Workers[0].Pods = 2
	p, err := newPlan(mb, Options{DownloaderImage: "d"})
	if err != nil {
		t.Fatal(err)
	}
	ms := buildModelServing(p)
	role := ms.Spec.Template.Roles[0]
	if role.WorkerReplicas != 1 || role.WorkerTemplate == nil {
		t.Fatalf("role %+v, want one worker pod", role)
	}
	for _, tmpl := range []workloadv1alpha1.PodTemplateSpec{role.EntryTemplate, *role.WorkerTemplate} {
		c := tmpl.Spec.Containers[0]
		got := strings.Join(append(c.Command, c.Args...), " ")
		want := "python3 -m sglang.launch_server --model-path /models/3e9c25eb14670437 --served-model-name m --port 8000 --host 0.0.0.0 --enable-metrics " +
			"--nnodes $(GROUP_SIZE) --node-rank $(WORKER_INDEX) --dist-init-addr $(ENTRY_ADDRESS):20000 --lora-paths sql=/adapters/sql --tp 2"
		if got != want {
			t.Errorf("command\n%s\nwant\n%s", got, want)
		}
	}
	if srv := buildModelServer(p); srv.Spec.InferenceEngine != "SGLang" || srv.Spec.WorkloadSelector.PDGroup != nil {
		t.Errorf("ModelServer %+v", srv.Spec)
	}
	if r := buildModelRoute(p); !slices.Equal(r.Spec.LoraAdapters, []string{"sql"}) {
		t.Errorf("route adapters %v", r.Spec.LoraAdapters)
	}
}
