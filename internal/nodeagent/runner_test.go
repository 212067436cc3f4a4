package nodeagent

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	a := New(Options{BinDir: "/bin"})
	a.engines.LookPath = func(string) (string, error) { return "", errors.New("none") }
	cases := []struct {
		name, image   string
		command, args []string
		want          []string
		substituted   bool
	}{
		{name: "llm-d sim", image: "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1",
			args: []string{"--model", "m", "--port", "8000", "--host", "0.0.0.0"},
			want: []string{"/bin/kthena-sim", "--model", "m", "--port", "8000", "--host", "10.1.1.1"}},
		{name: "sglang sim default port", image: "ghcr.io/faust-benchou/sglang-inference-sim:0.1.1",
			args: []string{"--model-path=m"},
			want: []string{"/bin/kthena-sim", "--model=m", "--engine", "sglang", "--host", "10.1.1.1", "--port", "30000"}},
		{name: "vllm serve substituted", image: "vllm/vllm-openai:v0.10.0",
			command: []string{"vllm", "serve"}, args: []string{"Qwen/Qwen2.5-0.5B", "--port=9000"},
			want:        []string{"/bin/kthena-sim", "Qwen/Qwen2.5-0.5B", "--port=9000", "--host", "10.1.1.1"},
			substituted: true},
		{name: "sglang python module substituted", image: "lmsysorg/sglang:latest",
			command: []string{"python3", "-m", "sglang.launch_server"}, args: []string{"--model-path", "m", "--port", "30000"},
			want:        []string{"/bin/kthena-sim", "--model", "m", "--port", "30000", "--engine", "sglang", "--host", "10.1.1.1"},
			substituted: true},
		{name: "chart's controller manager", image: "ghcr.io/kthena/kthena-controller-manager:v0.1.0",
			args: []string{"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--webhook-port=9443"},
			want: []string{"/bin/kthena-controller-manager", "--metrics-bind-address=10.1.1.1:8080", "--health-probe-bind-address=10.1.1.1:8081",
				"--webhook-port=9443", "--webhook-host=10.1.1.1"}},
		{name: "chart's router", image: "kthena-router:dev", command: []string{"/kthena-router"},
			args: []string{"--kubernetes", "--port=8080", "--webhook-host=0.0.0.0"},
			want: []string{"/bin/kthena-router", "--kubernetes", "--port=8080", "--webhook-host=0.0.0.0", "--bind-address=10.1.1.1", "--debug-port=0"}},
		{name: "shell form", image: "kthena/sim:latest",
			command: []string{"sh", "-c"}, args: []string{"kthena-sim --model m --port 8001"},
			want: []string{"/bin/kthena-sim", "--model", "m", "--port", "8001", "--host", "10.1.1.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := a.resolve(tc.image, tc.command, tc.args, "10.1.1.1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(l.argv, tc.want) {
				t.Errorf("argv = %q, want %q", l.argv, tc.want)
			}
			if (l.note != "") != tc.substituted {
				t.Errorf("note = %q, substituted want %v", l.note, tc.substituted)
			}
		})
	}
	_, err := a.resolve("nginx:1.28", nil, nil, "10.1.1.1")
	var nr errNoRunner
	if !errors.As(err, &nr) || !strings.Contains(err.Error(), "runner table") {
		t.Errorf("unknown image: err = %v, want errNoRunner explaining the runner table", err)
	}
}

func TestImageRepo(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/vllm/vllm-openai:v1":               "vllm/vllm-openai",
		"localhost:5000/kthena/sim":                   "localhost:5000/kthena/sim",
		"ghcr.io/llm-d/llm-d-inference-sim@sha256:ab": "ghcr.io/llm-d/llm-d-inference-sim",
	} {
		if got := imageRepo(in); got != want {
			t.Errorf("imageRepo(%q) = %q, want %q", in, got, want)
		}
	}
}
