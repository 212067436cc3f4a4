package platform

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

//go:embed demo.yaml
var demoManifests []byte

//go:embed demo-pd.yaml
var demoPDManifests []byte

//go:embed demo-autoscaling.yaml
var demoAutoscalingManifests []byte

//go:embed demo-booster.yaml
var demoBoosterManifests []byte

// Demo kinds: what `kthena up --demo[=KIND]` deploys.
const (
	// DemoAggregated is two simulated vLLM engines behind one ModelServer,
	// each serving whole requests (`--demo` alone).
	DemoAggregated = "aggregated"
	// DemoPD is prefill/decode disaggregation: two serving groups of one
	// prefill and one decode engine each, paired by serving group.
	DemoPD = "pd"
	// DemoAutoscaling is a model at zero replicas with an AutoscalingPolicy
	// that scales it from and to zero; the router holds its requests while
	// it starts.
	DemoAutoscaling = "autoscaling"
	// DemoBooster is one ModelBooster: the ModelBooster controller
	// generates the ModelServing of two simulated vLLM engines, the
	// ModelServer and the ModelRoute.
	DemoBooster = "booster"
)

// DemoModel is the model name the aggregated demo's route serves.
const DemoModel = "demo"

// DemoPDModel is the model name the PD demo's route serves.
const DemoPDModel = "demo-pd"

// DemoAutoscalingModel is the model name the autoscaling demo's route
// serves.
const DemoAutoscalingModel = "demo-scale"

// DemoBoosterModel is the model name the booster demo serves: the
// ModelBooster's name, its spec.name and the generated route's model.
const DemoBoosterModel = "demo-booster"

type demoKind struct {
	manifests []byte
	model     string
	summary   string
}

var demoKinds = map[string]demoKind{
	DemoAggregated:  {demoManifests, DemoModel, `ModelServing, ModelServer and ModelRoute "demo" (2 simulated vLLM engines)`},
	DemoPD:          {demoPDManifests, DemoPDModel, `ModelServing, ModelServer and ModelRoute "demo-pd" (2 serving groups of a simulated vLLM prefill engine and a decode engine, NIXL-style KV hand-off)`},
	DemoAutoscaling: {demoAutoscalingManifests, DemoAutoscalingModel, `ModelServing, AutoscalingPolicy, ModelServer and ModelRoute "demo-scale" (a simulated vLLM engine at zero replicas, 10 s start-up, scaled 0-3 on running requests and back to zero after 30 s idle)`},
	DemoBooster:     {demoBoosterManifests, DemoBoosterModel, `ModelBooster "demo-booster"; its controller generates ModelServing and ModelServer "demo-booster-vllm" (2 simulated vLLM engines) and ModelRoute "demo-booster"`},
}

// DemoKinds lists the demo kinds, the default first.
func DemoKinds() []string { return []string{DemoAggregated, DemoPD, DemoAutoscaling, DemoBooster} }

// DemoManifests returns the manifests a demo kind applies ("" is the
// aggregated demo).
func DemoManifests(kind string) ([]byte, error) {
	d, err := lookupDemo(kind)
	return d.manifests, err
}

// DemoChatBody is the chat request the demo of a kind prints.
func DemoChatBody(kind string) (string, error) {
	d, err := lookupDemo(kind)
	if err != nil {
		return "", err
	}
	return chatBody(d.model), nil
}

func lookupDemo(kind string) (demoKind, error) {
	if kind == "" {
		kind = DemoAggregated
	}
	d, ok := demoKinds[kind]
	if !ok {
		return demoKind{}, fmt.Errorf("unknown demo %q (known: %s)", kind, strings.Join(DemoKinds(), ", "))
	}
	return d, nil
}

// ValidDemoKind says whether kind names a demo ("" is the default).
func ValidDemoKind(kind string) bool {
	_, err := lookupDemo(kind)
	return err == nil
}

func chatBody(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"Hello! What is Kthena?"}],"max_tokens":32}`
}

// DemoPDPrompt is a prompt long enough (about 4 KB, some 900 tokens) that
// the router disaggregates it: its default decider lets a decode pod
// prefill a prompt itself when fewer than 512 of its tokens are not cached
// there. tag starts the prompt, so that prompts of different tags share no
// cached prefix.
func DemoPDPrompt(tag string) string {
	var b strings.Builder
	b.WriteString(tag)
	b.WriteString(". Read these notes on serving a model in two phases, then answer the question at the end.")
	for i := 1; b.Len() < 4000; i++ {
		fmt.Fprintf(&b, " Note %d: a prefill engine reads the whole prompt once and fills the attention keys and values of every layer;"+
			" the decode engine of the same serving group then pulls those blocks and writes the answer token by token,"+
			" so long prompts no longer stall the streams of other users (figure %d of the capacity plan).", i, 10+i)
	}
	b.WriteString(" Question: why does the router pick both engines from one serving group?")
	return b.String()
}

// demoPDBody is the PD demo's chat request with a long prompt.
func demoPDBody(tag string) string {
	data, _ := json.Marshal(map[string]any{"model": DemoPDModel, "max_tokens": 32,
		"messages": []map[string]string{{"role": "user", "content": DemoPDPrompt(tag)}}})
	return string(data)
}

// demoPDBodyFile is the request body file the PD demo's curl command sends.
const demoPDBodyFile = "demo-pd-chat.json"

// applyManifests creates or updates every document of a multi-document
// YAML.
func applyManifests(ctx context.Context, c client.Client, data []byte) error {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		existing := u.DeepCopy()
		err := c.Get(ctx, client.ObjectKeyFromObject(&u), existing)
		switch {
		case err == nil:
			// Resume: keep what is there (a second `kthena up --demo`
			// leaves the user's edits alone).
			continue
		case client.IgnoreNotFound(err) != nil:
			return err
		}
		if err := c.Create(ctx, &u); err != nil {
			return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
}

// ChatBody is the aggregated demo's chat request.
var ChatBody = chatBody(DemoModel)

// demo applies the demo of u.opts.DemoKind, waits until the router
// answers and prints a curl command and the answer.
func (u *up) demo(ctx context.Context, c client.Client, routerURL string) error {
	kind := u.opts.DemoKind
	d, err := lookupDemo(kind)
	if err != nil {
		return err
	}
	body := chatBody(d.model)
	if kind == DemoPD {
		// The check uses a prompt of its own, so that the one the user
		// sends next is cached on no decode pod yet.
		body = demoPDBody("Readiness check of the PD demo")
	}
	began := time.Now()
	if err := applyManifests(ctx, c, d.manifests); err != nil {
		return err
	}
	u.progress("demo applied: %s; waiting until it serves", d.summary)
	// The autoscaling demo's first request waits for a cold start.
	hc := &http.Client{Timeout: time.Minute}
	deadline := time.Now().Add(2 * time.Minute)
	var answer, decision string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, routerURL+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		if kind == DemoPD {
			req.Header.Set("X-Kthena-Decision", "1")
		}
		resp, err := hc.Do(req)
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var out struct {
					Choices []struct {
						Message struct {
							Content string `json:"content"`
						} `json:"message"`
					} `json:"choices"`
				}
				if json.Unmarshal(data, &out) == nil && len(out.Choices) > 0 {
					answer = out.Choices[0].Message.Content
					decision = describeDecision(resp.Header.Get("X-Kthena-Decision"))
					break
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the demo does not answer after 2 minutes; see `kubectl --kubeconfig %s/kubeconfig get pods` and %s/logs", u.opts.StateDir, u.opts.StateDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	u.progress("demo serving (%.1fs after applying it). Try it:", time.Since(began).Seconds())
	if kind == DemoPD {
		return u.printPDDemo(routerURL, answer, decision)
	}
	u.outMu.Lock()
	defer u.outMu.Unlock()
	fmt.Fprintf(u.opts.Out, "\n  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' -d '%s'\n\n", routerURL, body)
	fmt.Fprintf(u.opts.Out, "  answer: %q\n\n", answer)
	if kind == DemoAutoscaling {
		fmt.Fprintf(u.opts.Out, "  The first request above waited for a cold start: the router held it and asked the autoscaler for a\n")
		fmt.Fprintf(u.opts.Out, "  replica. After 30 s without requests %s goes back to zero; the next request waits again (about\n", DemoAutoscalingModel)
		fmt.Fprintf(u.opts.Out, "  10 s of engine start-up). Watch it: kubectl --kubeconfig %s/kubeconfig get modelserving %s -w\n\n",
			u.opts.StateDir, DemoAutoscalingModel)
	}
	if kind == DemoBooster {
		fmt.Fprintf(u.opts.Out, "  The ModelBooster controller generated what serves it (edit the booster to change it):\n\n")
		fmt.Fprintf(u.opts.Out, "  kthena describe modelbooster %s --kubeconfig %s/kubeconfig\n", DemoBoosterModel, u.opts.StateDir)
		fmt.Fprintf(u.opts.Out, "  kubectl --kubeconfig %s/kubeconfig get modelservings,modelservers,modelroutes,pods -l %s=%s\n\n",
			u.opts.StateDir, workloadv1alpha1.ModelBoosterModelNameLabelKey, DemoBoosterModel)
	}
	return nil
}

// printPDDemo writes the PD demo's long request to the state directory and
// prints curl commands for it and for a short prompt.
func (u *up) printPDDemo(routerURL, answer, decision string) error {
	file := filepath.Join(u.opts.StateDir, demoPDBodyFile)
	if err := os.WriteFile(file, []byte(demoPDBody("Kthena PD demo")), 0o644); err != nil {
		return err
	}
	u.outMu.Lock()
	defer u.outMu.Unlock()
	out := u.opts.Out
	fmt.Fprintf(out, "\n  A long prompt (about 900 tokens): a prefill pod reads it, the decode pod of the same serving group answers.\n")
	fmt.Fprintf(out, "  The X-Kthena-Decision header of the answer names the pair:\n\n")
	fmt.Fprintf(out, "  curl -s -D - %s/v1/chat/completions -H 'Content-Type: application/json' -H 'X-Kthena-Decision: 1' -d @%s\n\n", routerURL, file)
	if decision != "" {
		fmt.Fprintf(out, "  (the check before: %s; answer %q)\n\n", decision, answer)
	}
	fmt.Fprintf(out, "  A short prompt: the router lets the decode pod prefill it itself (no KV worth moving), as it does\n")
	fmt.Fprintf(out, "  when the same long prompt comes again and its prefix is cached on the decode pod:\n\n")
	fmt.Fprintf(out, "  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' -d '%s'\n\n", routerURL, chatBody(DemoPDModel))
	return nil
}

// describeDecision summarizes the router's decision header for a PD
// request: "prefill <pod> -> decode <pod> (group <g>)", or "" when the
// header holds no pair.
func describeDecision(header string) string {
	var d struct {
		Mode string `json:"mode"`
		Pair *struct {
			Prefill string `json:"prefill"`
			Decode  string `json:"decode"`
			Group   string `json:"group"`
		} `json:"pair"`
	}
	if header == "" || json.Unmarshal([]byte(header), &d) != nil || d.Pair == nil {
		return ""
	}
	return fmt.Sprintf("prefill %s -> decode %s (group %s)", d.Pair.Prefill, d.Pair.Decode, d.Pair.Group)
}
