package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// cliResult is one run of the kthena binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, truncate(r.stdout, 2000), truncate(r.stderr, 2000))
}

// kthenaCLI runs the kthena binary the suite built, as a user of the
// platform runs it: no cluster or router flag, KTHENA_STATE_DIR naming the
// platform's state directory, no $KUBECONFIG, $KTHENA_ROUTER_URL or
// ~/.kube/config (HOME is a fresh directory), so the CLI finds the API
// server through <state-dir>/kubeconfig and the router through
// <state-dir>/ports.json by itself.
func kthenaCLI(t *testing.T, home string, args ...string) cliResult {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(c, filepath.Join(env.binDir, "kthena"), args...)
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "HOME", "KUBECONFIG", "KTHENA_ROUTER_URL", "KTHENA_STATE_DIR":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home, "KTHENA_STATE_DIR="+env.stateDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("kthena %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustCLI runs kthena and fails the test unless it exits 0.
func mustCLI(t *testing.T, home string, args ...string) cliResult {
	t.Helper()
	r := kthenaCLI(t, home, args...)
	if r.code != 0 {
		t.Fatalf("kthena %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// unrouted says whether a `kthena chat` run failed as it must for a model
// the router has no route for: exit 1 and one line on stderr, the router's
// 404 naming the model.
func unrouted(r cliResult, model string) bool {
	return r.code == 1 && r.stdout == "" && strings.HasPrefix(r.stderr, "error: router: ") &&
		strings.Count(r.stderr, "\n") == 1 && strings.Contains(r.stderr, fmt.Sprintf("%q", model)) && strings.Contains(r.stderr, "(HTTP 404)")
}

// createNamespace creates a namespace and deletes it when the test ends.
func createNamespace(t *testing.T, name string) {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := kube(t).Create(ctx(t), n); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube(t).Delete(context.Background(), n) })
}

// boosterPods lists the pods generated for a ModelBooster in a namespace.
func boosterPods(t *testing.T, namespace, booster string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := kube(t).List(ctx(t), &list, client.InNamespace(namespace),
		client.MatchingLabels{workloadv1alpha1.ModelBoosterModelNameLabelKey: booster}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// waitBoosterActive waits until the ModelBooster's Active condition is
// True and n of its pods are ready (none terminating), and returns them.
func waitBoosterActive(t *testing.T, namespace, name string, n int) (*workloadv1alpha1.ModelBooster, []corev1.Pod) {
	t.Helper()
	mb := &workloadv1alpha1.ModelBooster{}
	var pods []corev1.Pod
	eventually(t, 2*time.Minute, fmt.Sprintf("ModelBooster %s/%s Active with %d ready pods", namespace, name, n), func() error {
		if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: namespace, Name: name}, mb); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(mb.Status.Conditions, string(workloadv1alpha1.ModelStatusConditionTypeActive)); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Active condition %+v; conditions %+v", c, mb.Status.Conditions)
		}
		pods = boosterPods(t, namespace, name)
		ready := 0
		for i := range pods {
			if pods[i].DeletionTimestamp == nil && podReady(&pods[i]) {
				ready++
			}
		}
		if ready != n || len(pods) != n {
			return fmt.Errorf("%d ready of %d pods", ready, len(pods))
		}
		return nil
	})
	return mb, pods
}

// generated is what the ModelBooster controller generates for a booster
// with backend "vllm": ModelServing and ModelServer <booster>-vllm,
// ModelRoute <booster>.
func generated(namespace, booster string) []client.Object {
	key := func(o client.Object, name string) client.Object {
		o.SetNamespace(namespace)
		o.SetName(name)
		return o
	}
	return []client.Object{
		key(&workloadv1alpha1.ModelServing{}, booster+"-vllm"),
		key(&networkingv1alpha1.ModelServer{}, booster+"-vllm"),
		key(&networkingv1alpha1.ModelRoute{}, booster),
	}
}

// checkGenerated: every generated object exists and is controlled by the
// booster.
func checkGenerated(t *testing.T, mb *workloadv1alpha1.ModelBooster) {
	t.Helper()
	for _, o := range generated(mb.Namespace, mb.Name) {
		if err := kube(t).Get(ctx(t), client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("generated %T %s: %v", o, o.GetName(), err)
			continue
		}
		if ref := metav1.GetControllerOf(o); ref == nil || ref.UID != mb.UID || ref.Kind != "ModelBooster" {
			t.Errorf("%T %s is controlled by %+v, want the ModelBooster %s (uid %s)", o, o.GetName(), ref, mb.Name, mb.UID)
		}
	}
}

// engineRequests sums vllm:request_success_total over pods, scraped at
// their pod IPs.
func engineRequests(t *testing.T, pods []corev1.Pod) float64 {
	t.Helper()
	sum := 0.0
	for _, p := range pods {
		sum += metricValue(t, fmt.Sprintf("http://%s:8000/metrics", p.Status.PodIP), "vllm:request_success_total")
	}
	return sum
}

// TestModelBoosterFromTemplate is the CLI's path from a model name to an
// answer on the local platform, with the kthena binary only: `kthena
// create manifest -t Qwen/Qwen3-8B` with values for the simulator (the
// simulator's image, so that no real vLLM is started where one is
// installed; two engines; a short context), checked by a server-side dry
// run and then created; the ModelBooster controller generates the
// ModelServing, ModelServer and ModelRoute; `kthena get` and `kthena
// status` show them; `kthena chat` streams an answer through the router
// that one of the generated engines computed; deleting the booster removes
// everything it generated (the garbage collector) and the model stops being
// routed.
func TestModelBoosterFromTemplate(t *testing.T) {
	const bns, name = "e2e-booster", "e2e-qwen"
	home := t.TempDir()
	createNamespace(t, bns)
	sets := "image=ghcr.io/llm-d/llm-d-inference-sim:v0.5.1,replicas=2,maxModelLen=4096,gpuMemoryUtilization=0.5"
	createArgs := []string{"create", "manifest", "-t", "Qwen/Qwen3-8B", "--name", name, "-n", bns, "--set", sets}

	if r := kthenaCLI(t, home, "chat", name, "hello"); !unrouted(r, name) {
		t.Errorf("chat before the model exists: %s; want exit 1 and one error line, the router's 404 for %q", r, name)
	}

	dry := mustCLI(t, home, append(createArgs, "--dry-run")...)
	if !strings.Contains(dry.stderr, "server-side dry run passed at https://127.0.0.1:") {
		t.Errorf("--dry-run was not checked by the platform's API server: %s", dry)
	}
	var rendered workloadv1alpha1.ModelBooster
	if err := yaml.UnmarshalStrict([]byte(dry.stdout), &rendered); err != nil {
		t.Fatalf("--dry-run printed no ModelBooster: %v\n%s", err, dry.stdout)
	}
	w := rendered.Spec.Backend.Workers
	if rendered.Name != name || rendered.Namespace != bns || rendered.Spec.Backend.Replicas != 2 || len(w) != 1 ||
		!strings.HasPrefix(w[0].Image, "ghcr.io/llm-d/llm-d-inference-sim:") {
		t.Fatalf("--dry-run rendered %s/%s, replicas %d, workers %+v; want the --set values", rendered.Namespace, rendered.Name, rendered.Spec.Backend.Replicas, w)
	}
	if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: bns, Name: name}, &workloadv1alpha1.ModelBooster{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after --dry-run the ModelBooster exists (or cannot be read): %v", err)
	}

	r := mustCLI(t, home, createArgs...)
	if want := "modelbooster.workload.serving.volcano.sh/" + name + " created\n"; r.stdout != want {
		t.Errorf("create printed %q, want %q", r.stdout, want)
	}
	t.Cleanup(func() {
		_ = kube(t).Delete(context.Background(), &workloadv1alpha1.ModelBooster{ObjectMeta: metav1.ObjectMeta{Namespace: bns, Name: name}})
	})
	mb, pods := waitBoosterActive(t, bns, name, 2)
	checkGenerated(t, mb)
	for _, p := range pods {
		if p.Spec.Containers[0].Image != w[0].Image {
			t.Errorf("pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, w[0].Image)
		}
	}

	if r := mustCLI(t, home, "get", "mb", "-n", bns); !regexp.MustCompile(`(?m)^` + name + `\s`).MatchString(r.stdout) {
		t.Errorf("kthena get mb lists no %s:\n%s", name, r.stdout)
	}
	// Status converges: an engine that fails after its first readiness
	// (a pod recreated by the ModelServing's recovery) shows for a while.
	eventually(t, time.Minute, "kthena status shows the booster active and its engines ready", func() error {
		st := mustCLI(t, home, "status", "-n", bns)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^` + name + `\s+` + name + `\s+vLLM\s+2\s+True\s`),   // ModelBoosters: model, backend, replicas, active
			regexp.MustCompile(`(?m)^` + name + `-vllm\s+2/2\s`),                         // ModelServings: ready groups
			regexp.MustCompile(`(?m)^` + name + `-vllm\s+` + name + `\s+vLLM\s+2/2\s`),   // ModelServers: model, engine, ready pods
			regexp.MustCompile(`(?m)^` + name + `\s+` + name + `\s+` + name + `-vllm\s`), // ModelRoutes: model, target
		} {
			if !want.MatchString(st.stdout) {
				return fmt.Errorf("no line matching %s:\n%s", want, st.stdout)
			}
		}
		return nil
	})
	_, pods = waitBoosterActive(t, bns, name, 2)

	// The router picks the generated ModelServer's pods once it has seen
	// them ready; until then it may answer 404 or hold the request.
	before := engineRequests(t, pods)
	var answer cliResult
	eventually(t, 30*time.Second, "kthena chat answers", func() error {
		answer = kthenaCLI(t, home, "chat", name, "Say hello to the end-to-end suite", "--max-tokens", "16")
		if answer.code != 0 {
			return errors.New(answer.String())
		}
		return nil
	})
	if strings.TrimSpace(answer.stdout) == "" || answer.stderr != "" {
		t.Errorf("kthena chat: %s; want an answer on stdout and nothing on stderr", answer)
	}
	eventually(t, 10*time.Second, "an engine of the booster computed the answer", func() error {
		if after := engineRequests(t, pods); after < before+1 {
			return fmt.Errorf("vllm:request_success_total of the booster's pods %v before, %v after", before, after)
		}
		return nil
	})

	if err := kube(t).Delete(ctx(t), mb); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "everything the booster generated is deleted", func() error {
		var left []string
		for _, o := range generated(bns, name) {
			err := kube(t).Get(ctx(t), client.ObjectKeyFromObject(o), o)
			switch {
			case err == nil:
				left = append(left, fmt.Sprintf("%T %s", o, o.GetName()))
			case !apierrors.IsNotFound(err):
				return err
			}
		}
		for _, p := range boosterPods(t, bns, name) {
			left = append(left, "pod "+p.Name)
		}
		if len(left) > 0 {
			return fmt.Errorf("left: %s", strings.Join(left, ", "))
		}
		return nil
	})
	eventually(t, 30*time.Second, "the router no longer routes "+name, func() error {
		if r := kthenaCLI(t, home, "chat", name, "still there?"); !unrouted(r, name) {
			return errors.New(r.String())
		}
		return nil
	})
	if r := mustCLI(t, home, "get", "mb", "-n", bns); strings.Contains(r.stdout, name) {
		t.Errorf("kthena get mb after the deletion:\n%s", r.stdout)
	}
}

// demoCurl matches the curl command `kthena up --demo` prints.
var demoCurl = regexp.MustCompile(`curl -s (http://127\.0\.0\.1:\d+)/v1/chat/completions -H 'Content-Type: application/json' -d '(\{[^']*\})'`)

// TestBoosterDemo: the suite's platform runs `kthena up --demo=booster`.
// The demo is one ModelBooster; the platform reports it serving and prints
// a curl command that answers; the ModelBooster controller generated the
// ModelServing (two ready simulator pods), ModelServer and ModelRoute,
// each controlled by the booster; the router sends the demo model to those
// pods and to no other.
func TestBoosterDemo(t *testing.T) {
	var out string
	eventually(t, 3*time.Minute, "kthena up reports the booster demo serving", func() error {
		out = env.out.String()
		if i := strings.Index(out, "demo failed:"); i >= 0 {
			t.Fatalf("kthena up: %s", truncate(out[i:], 2000))
		}
		if !strings.Contains(out, "demo serving (") {
			return errors.New("no \"demo serving\" line yet")
		}
		return nil
	})
	out = out[strings.Index(out, "demo applied:"):]
	for _, want := range []string{`ModelBooster "demo-booster"`, "kthena describe modelbooster demo-booster", "-l workload.serving.volcano.sh/model-name=demo-booster"} {
		if !strings.Contains(out, want) {
			t.Errorf("kthena up's demo output lacks %q:\n%s", want, out)
		}
	}
	m := demoCurl.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kthena up printed no curl command:\n%s", out)
	}
	if m[1] != env.routerURL {
		t.Errorf("the curl command goes to %s, want the router %s", m[1], env.routerURL)
	}
	if want, _ := platform.DemoChatBody(platform.DemoBooster); m[2] != want {
		t.Errorf("the curl command sends %s, want %s", m[2], want)
	}

	mb, pods := waitBoosterActive(t, ns, platform.DemoBoosterModel, 2)
	checkGenerated(t, mb)
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	resp, err := http.Post(m[1]+"/v1/chat/completions", "application/json", strings.NewReader(m[2]))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	err = json.NewDecoder(resp.Body).Decode(&answer)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || len(answer.Choices) == 0 || answer.Choices[0].Message.Content == "" {
		t.Fatalf("the printed curl command: %d %v %+v; want an answer", resp.StatusCode, err, answer)
	}
	for i := range 8 {
		r := chat(t, platform.DemoBoosterModel, fmt.Sprintf("booster demo %d", i), nil)
		if r.status != http.StatusOK || !slices.Contains(names, r.chosen) {
			t.Errorf("request %d: %d, served by %q; want 200 from one of %v", i, r.status, r.chosen, names)
		}
	}
}
