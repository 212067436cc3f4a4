package nodeagent

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Runner annotations on pods.
const (
	// RunnerAnnotation says how the agent runs the pod's containers.
	RunnerAnnotation = "kthena.io/runner"
)

// kind of engine a runner starts.
type engineKind int

const (
	engineSim    engineKind = iota // kthena-sim, arguments used as they are
	engineVLLM                     // vLLM image: real vllm or the simulator
	engineSGLang                   // SGLang image: real sglang or the simulator
	kthenaBinary                   // Kthena's own image: the binary of that name from BinDir
)

// runnerEntry maps an image repository to how it runs.
type runnerEntry struct {
	// repo matches the image without tag or digest; a trailing "*" matches
	// a prefix.
	repo   string
	kind   engineKind
	sglang bool   // the simulator speaks SGLang's API and metrics
	binary string // kthenaBinary: the executable in BinDir
}

// runnerTable is the image runner table. To run another image locally,
// add an entry here (see docs/local-platform.md).
var runnerTable = []runnerEntry{
	{repo: "kthena/sim", kind: engineSim},
	{repo: "kthena/kthena-sim", kind: engineSim},
	{repo: "ghcr.io/kthena/kthena-sim", kind: engineSim},
	{repo: "ghcr.io/llm-d/llm-d-inference-sim", kind: engineSim},
	{repo: "ghcr.io/faust-benchou/sglang-inference-sim", kind: engineSim, sglang: true},
	{repo: "vllm/vllm-openai*", kind: engineVLLM},
	{repo: "ghcr.io/huntersman/vllm-cpu-env", kind: engineVLLM},
	{repo: "lmsysorg/sglang*", kind: engineSGLang, sglang: true},
	// The Helm chart's images.
	{repo: "ghcr.io/kthena/kthena-controller-manager", kind: kthenaBinary, binary: "kthena-controller-manager"},
	{repo: "kthena-controller-manager", kind: kthenaBinary, binary: "kthena-controller-manager"},
	{repo: "ghcr.io/kthena/kthena-router", kind: kthenaBinary, binary: "kthena-router"},
	{repo: "kthena-router", kind: kthenaBinary, binary: "kthena-router"},
}

// imageRepo strips the tag and digest from an image reference and the
// implicit docker.io/ prefixes.
func imageRepo(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	image = strings.TrimPrefix(image, "docker.io/")
	return strings.TrimPrefix(image, "library/")
}

func lookupRunner(image string) (runnerEntry, bool) {
	repo := imageRepo(image)
	for _, e := range runnerTable {
		if p, ok := strings.CutSuffix(e.repo, "*"); ok {
			if strings.HasPrefix(repo, p) {
				return e, true
			}
		} else if repo == e.repo {
			return e, true
		}
	}
	return runnerEntry{}, false
}

// launch is how one container is started.
type launch struct {
	argv []string
	// note explains a substitution (empty when the image runs as itself).
	note string
}

// Engines says which real engines are installed on this machine.
type Engines struct {
	once         sync.Once
	vllm, sglang string
	LookPath     func(string) (string, error)
	PythonHasMod func(python, module string) bool
}

func (e *Engines) detect() {
	e.once.Do(func() {
		look := e.LookPath
		if look == nil {
			look = exec.LookPath
		}
		if p, err := look("vllm"); err == nil {
			e.vllm = p
		}
		has := e.PythonHasMod
		if has == nil {
			has = func(python, module string) bool {
				return exec.Command(python, "-c", "import "+module).Run() == nil
			}
		}
		if py, err := look("python3"); err == nil && has(py, "sglang") {
			e.sglang = py
		}
	})
}

// errNoRunner says the image has no runner.
type errNoRunner struct{ image string }

func (e errNoRunner) Error() string {
	return fmt.Sprintf("image %q has no local runner: the local platform runs the simulator images (kthena/sim, ghcr.io/llm-d/llm-d-inference-sim, ghcr.io/faust-benchou/sglang-inference-sim), vLLM/SGLang images and Kthena's own images; to run another image add an entry to the runner table in internal/nodeagent/runner.go (see docs/local-platform.md)", e.image)
}

// resolve turns a container's image, command and args into a process.
// host is the pod IP the engine must listen on.
func (a *Agent) resolve(image string, command, args []string, host string) (launch, error) {
	e, ok := lookupRunner(image)
	if !ok {
		return launch{}, errNoRunner{image}
	}
	if e.kind == kthenaBinary {
		return launch{argv: append([]string{filepath.Join(a.opts.BinDir, e.binary)}, kthenaArgs(e.binary, append(append([]string{}, command...), args...), host)...)}, nil
	}
	words := engineWords(command, args)
	sim := filepath.Join(a.opts.BinDir, "kthena-sim")
	a.engines.detect()
	switch e.kind {
	case engineVLLM:
		if a.engines.vllm != "" {
			return launch{argv: append([]string{a.engines.vllm, "serve"}, withHost(words, host, 8000)...)}, nil
		}
		return launch{
			argv: append([]string{sim}, simArgs(words, host, false)...),
			note: fmt.Sprintf("kthena-sim substituted for %s: vllm is not installed on this machine", image),
		}, nil
	case engineSGLang:
		if a.engines.sglang != "" {
			return launch{argv: append([]string{a.engines.sglang, "-m", "sglang.launch_server"}, withHost(words, host, 30000)...)}, nil
		}
		return launch{
			argv: append([]string{sim}, simArgs(words, host, true)...),
			note: fmt.Sprintf("kthena-sim substituted for %s: sglang is not installed on this machine", image),
		}, nil
	default:
		return launch{argv: append([]string{sim}, simArgs(words, host, e.sglang)...)}, nil
	}
}

// kthenaArgs binds a Kthena binary's listeners to the pod's IP, as its own
// network namespace would: ":PORT" addresses become "IP:PORT", and the
// webhook server and the router listen on the IP. A leading entry point
// (the binary itself) is dropped. The router's localhost debug port is
// turned off unless set, since every router pod would want the same one.
func kthenaArgs(binary string, words []string, host string) []string {
	if len(words) > 0 && !strings.HasPrefix(words[0], "-") && filepath.Base(words[0]) == binary {
		words = words[1:]
	}
	var out []string
	for _, w := range words {
		name, val, ok := strings.Cut(w, "=")
		if ok && strings.HasSuffix(name, "-bind-address") && strings.HasPrefix(val, ":") {
			w = name + "=" + host + val
		}
		out = append(out, w)
	}
	if !hasFlag(out, "--webhook-host") {
		out = append(out, "--webhook-host="+host)
	}
	if binary == "kthena-router" {
		if !hasFlag(out, "--bind-address") {
			out = append(out, "--bind-address="+host)
		}
		if !hasFlag(out, "--debug-port") {
			out = append(out, "--debug-port=0")
		}
	}
	return out
}

// engineWords joins command and args and drops the entry point (vllm
// serve, python -m module, sh -c, kthena-sim), keeping the engine's flags
// and a positional model.
func engineWords(command, args []string) []string {
	words := append(append([]string{}, command...), args...)
	if len(words) >= 2 && (filepath.Base(words[0]) == "sh" || filepath.Base(words[0]) == "bash") && words[1] == "-c" && len(words) >= 3 {
		words = strings.Fields(strings.Join(words[2:], " "))
	}
	for len(words) > 0 && !strings.HasPrefix(words[0], "-") {
		base := filepath.Base(words[0])
		switch {
		case strings.HasPrefix(base, "python"):
			words = words[1:]
			if len(words) >= 2 && words[0] == "-m" {
				words = words[2:]
			}
		case base == "vllm" && len(words) >= 2 && words[1] == "serve":
			words = words[2:]
			return words // the positional model stays
		case base == "vllm", base == "serve", base == "kthena-sim", base == "llm-d-inference-sim", base == "exec":
			words = words[1:]
		default:
			return words
		}
	}
	return words
}

// simArgs translates engine flags for kthena-sim: --model-path becomes
// --model, the host becomes the pod IP, the default port is the engine's.
func simArgs(words []string, host string, sglang bool) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		name, _, _ := strings.Cut(w, "=")
		switch name {
		case "--model-path":
			w = "--model" + strings.TrimPrefix(w, "--model-path")
		case "--tp", "--tp-size":
			// not a simulator flag; ParseArgs ignores unknown flags anyway
		}
		out = append(out, w)
	}
	if sglang && !hasFlag(out, "--engine") {
		out = append(out, "--engine", "sglang")
	}
	def := 8000
	if sglang {
		def = 30000
	}
	return withHost(out, host, def)
}

// withHost replaces --host with the pod IP and adds --port when missing.
func withHost(words []string, host string, defPort int) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		name, _, hasValue := strings.Cut(words[i], "=")
		if name == "--host" {
			if !hasValue && i+1 < len(words) {
				i++
			}
			continue
		}
		out = append(out, words[i])
	}
	out = append(out, "--host", host)
	if !hasFlag(out, "--port") {
		out = append(out, "--port", fmt.Sprint(defPort))
	}
	return out
}

func hasFlag(words []string, flag string) bool {
	for _, w := range words {
		if w == flag || strings.HasPrefix(w, flag+"=") {
			return true
		}
	}
	return false
}
