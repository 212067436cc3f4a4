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

// DemoModel is the model name the demo's route serves.
const DemoModel = "demo"

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

// ChatBody is the demo's chat request.
var ChatBody = `{"model":"demo","messages":[{"role":"user","content":"Hello! What is Kthena?"}],"max_tokens":32}`

// demo applies the demo, waits until the router answers and prints a
// curl command and the answer.
func (u *up) demo(ctx context.Context, c client.Client, routerURL string) error {
	began := time.Now()
	if err := applyManifests(ctx, c, demoManifests); err != nil {
		return err
	}
	u.progress("demo applied: ModelServing, ModelServer and ModelRoute \"demo\" (2 simulated vLLM engines); waiting until it serves")
	hc := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	var answer string
	for {
		resp, err := hc.Post(routerURL+"/v1/chat/completions", "application/json", strings.NewReader(ChatBody))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var out struct {
					Choices []struct {
						Message struct {
							Content string `json:"content"`
						} `json:"message"`
					} `json:"choices"`
				}
				if json.Unmarshal(body, &out) == nil && len(out.Choices) > 0 {
					answer = out.Choices[0].Message.Content
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
	fmt.Fprintf(u.opts.Out, "\n  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' -d '%s'\n\n", routerURL, ChatBody)
	fmt.Fprintf(u.opts.Out, "  answer: %q\n\n", answer)
	u.outMu.Unlock()
	return nil
}
