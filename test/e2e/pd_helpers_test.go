package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// The PD demo (`kthena up --demo=pd`): its pods' app label and the number
// of pods (two serving groups of a prefill and a decode engine).
const (
	pdLabel = "kthena-demo-pd"
	pdPods  = 4
)

// deployPDDemo creates the objects of the PD demo's manifest, the same
// `kthena up --demo=pd` applies, deletes them when the test ends, and
// waits until its four pods are ready and the router serves its model.
func deployPDDemo(t *testing.T) {
	t.Helper()
	deployDemo(t, platform.DemoPD)
	waitReady(t, pdLabel, pdPods)
	waitServes(t, platform.DemoPDModel)
}

// deployDemo creates the objects of a demo's manifest, the same
// `kthena up --demo=KIND` applies, and deletes them when the test ends.
func deployDemo(t *testing.T, kind string) {
	t.Helper()
	data, err := platform.DemoManifests(kind)
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	create(t, objs...)
}

// pdPair is the pair of the router's decision for a PD request.
type pdPair struct {
	Prefill string `json:"prefill"`
	Decode  string `json:"decode"`
	Group   string `json:"group"`
}

// pdReply is one answer of the router for the PD model.
type pdReply struct {
	status  int
	content string // the message content, streamed chunks joined
	chunks  int    // content chunks of a stream
	done    bool   // a stream ended with [DONE]
	err     string // transport error or error body
	mode    string // decision mode
	pair    pdPair
	decided bool // the decision header was present and parsed
	start   time.Time
	end     time.Time
}

// pdChat sends a chat completion for the PD model through the router,
// asking for the decision header.
func pdChat(prompt string, stream bool, maxTokens int) pdReply {
	r := pdReply{start: time.Now()}
	body, _ := json.Marshal(map[string]any{"model": platform.DemoPDModel, "max_tokens": maxTokens, "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequest(http.MethodPost, env.routerURL+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kthena-Decision", "1")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		r.err = err.Error()
		r.end = time.Now()
		return r
	}
	defer func() { _ = resp.Body.Close() }()
	r.status = resp.StatusCode
	var d struct {
		Mode string  `json:"mode"`
		Pair *pdPair `json:"pair"`
	}
	if h := resp.Header.Get("X-Kthena-Decision"); h != "" && json.Unmarshal([]byte(h), &d) == nil {
		r.mode, r.decided = d.Mode, true
		if d.Pair != nil {
			r.pair = *d.Pair
		}
	}
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		r.err = truncate(string(data), 500)
		r.end = time.Now()
		return r
	}
	if !stream {
		var out struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			r.err = err.Error()
		} else if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
			r.err = fmt.Sprintf("bad body %q", truncate(string(data), 300))
		} else {
			r.content = out.Choices[0].Message.Content
		}
		r.end = time.Now()
		return r
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			r.done = true
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Error any `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			r.err = fmt.Sprintf("bad chunk %q", truncate(line, 300))
			continue
		}
		if chunk.Error != nil {
			r.err = fmt.Sprintf("error chunk %s", truncate(line, 300))
		}
		for _, c := range chunk.Choices {
			if c.Delta.Content != "" {
				r.chunks++
				r.content += c.Delta.Content
			}
		}
	}
	if err := sc.Err(); err != nil && r.err == "" {
		r.err = "reading the stream: " + err.Error()
	}
	if !r.done && r.err == "" {
		r.err = "the stream ended without [DONE]"
	}
	r.end = time.Now()
	return r
}

// ok says whether the request was answered in full.
func (r pdReply) ok() bool {
	return r.status == http.StatusOK && r.err == "" && strings.TrimSpace(r.content) != ""
}

func (r pdReply) String() string {
	return fmt.Sprintf("status %d, mode %q, pair %+v, %d chunks, content %q, err %s", r.status, r.mode, r.pair, r.chunks, truncate(r.content, 60), r.err)
}

// pdPodInfo is what the PD checks need of a demo pod.
type pdPodInfo struct {
	name, role, group, ip string
	uid                   string
}

// pdPodsByKey lists the PD demo's pods by "namespace/name".
func pdPodsByKey(t *testing.T) map[string]pdPodInfo {
	t.Helper()
	out := map[string]pdPodInfo{}
	for _, p := range allPods(t, pdLabel) {
		out[p.Namespace+"/"+p.Name] = pdInfo(&p)
	}
	return out
}

func pdInfo(p *corev1.Pod) pdPodInfo {
	return pdPodInfo{name: p.Name, role: p.Labels[workloadv1alpha1.RoleLabelKey],
		group: p.Labels[workloadv1alpha1.GroupNameLabelKey], ip: p.Status.PodIP, uid: string(p.UID)}
}

// checkPDDecision returns why a reply's decision breaks the PD contract:
// mode "pd", a prefill pod and a decode pod of the PD demo, both of the
// decision's group. pods maps "namespace/name" to the demo's pods (the
// pods may have been replaced since; only their labels matter, and a
// replacement keeps its name and labels).
func checkPDDecision(r pdReply, pods map[string]pdPodInfo) error {
	if !r.decided {
		return fmt.Errorf("no parsable X-Kthena-Decision header")
	}
	if r.mode != "pd" {
		return fmt.Errorf("decision mode %q, want pd", r.mode)
	}
	p := r.pair
	if p.Prefill == "" || p.Decode == "" || p.Group == "" {
		return fmt.Errorf("incomplete pair %+v", p)
	}
	pre, ok := pods[p.Prefill]
	if !ok {
		return fmt.Errorf("prefill %s is not a pod of the PD demo", p.Prefill)
	}
	dec, ok := pods[p.Decode]
	if !ok {
		return fmt.Errorf("decode %s is not a pod of the PD demo", p.Decode)
	}
	if pre.role != "prefill" || dec.role != "decode" {
		return fmt.Errorf("pair %+v: roles %q and %q, want prefill and decode", p, pre.role, dec.role)
	}
	if pre.group != p.Group || dec.group != p.Group {
		return fmt.Errorf("pair %+v: the pods are in groups %q and %q", p, pre.group, dec.group)
	}
	return nil
}

// engineTokens is a simulated vLLM engine's token counters, scraped from
// the pod's own /metrics.
type engineTokens struct{ prompt, generation float64 }

// scrapeEngine reads a pod's prompt and generation token counters, under
// the name vLLM exposes (with _total) or the older one.
func scrapeEngine(t *testing.T, ip string) engineTokens {
	t.Helper()
	url := fmt.Sprintf("http://%s:8000/metrics", ip)
	either := func(name string) float64 {
		return max(counterSum(t, url, name), counterSum(t, url, name+"_total"))
	}
	return engineTokens{prompt: either("vllm:prompt_tokens"), generation: either("vllm:generation_tokens")}
}

// scrapeAll scrapes every ready pod of the PD demo, by "namespace/name".
func scrapeAll(t *testing.T) map[string]engineTokens {
	t.Helper()
	out := map[string]engineTokens{}
	for _, p := range readyPods(t, pdLabel) {
		out[p.Namespace+"/"+p.Name] = scrapeEngine(t, p.Status.PodIP)
	}
	return out
}
