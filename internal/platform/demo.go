package platform

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

//go:embed demo.yaml
var demoManifests []byte

//go:embed demo-pd.yaml
var demoPDManifests []byte

// Demo kinds: what `kthena up --demo[=KIND]` deploys.
const (
	// DemoAggregated is two simulated vLLM engines behind one ModelServer,
	// each serving whole requests (`--demo` alone).
	DemoAggregated = "aggregated"
	// DemoPD is prefill/decode disaggregation: two serving groups of one
	// prefill and one decode engine each, paired by serving group.
	DemoPD = "pd"
)

// DemoModel is the model name the aggregated demo's route serves.
const DemoModel = "demo"

// DemoPDModel is the model name the PD demo's route serves.
const DemoPDModel = "demo-pd"

type demoKind struct {
	manifests []byte
	model     string
	summary   string
}

var demoKinds = map[string]demoKind{
	DemoAggregated: {demoManifests, DemoModel, `ModelServing, ModelServer and ModelRoute "demo" (2 simulated vLLM engines)`},
	DemoPD:         {demoPDManifests, DemoPDModel, `ModelServing, ModelServer and ModelRoute "demo-pd" (2 serving groups of a simulated vLLM prefill engine and a decode engine, NIXL-style KV hand-off)`},
}

// DemoKinds lists the demo kinds, the default first.
func DemoKinds() []string { return []string{DemoAggregated, DemoPD} }

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
	began := time.Now()
	if err := applyManifests(ctx, c, d.manifests); err != nil {
		return err
	}
	u.progress("demo applied: %s; waiting until it serves", d.summary)
	hc := &http.Client{Timeout: 10 * time.Second}
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
	u.outMu.Lock()
	defer u.outMu.Unlock()
	fmt.Fprintf(u.opts.Out, "\n  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' -d '%s'\n\n", routerURL, body)
	fmt.Fprintf(u.opts.Out, "  answer: %q\n\n", answer)
	if kind == DemoPD {
		fmt.Fprintf(u.opts.Out, "  Add -i -H 'X-Kthena-Decision: 1' to see which prefill and decode pods served it")
		if decision != "" {
			fmt.Fprintf(u.opts.Out, " (this one: %s)", decision)
		}
		fmt.Fprintf(u.opts.Out, ".\n\n")
	}
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
