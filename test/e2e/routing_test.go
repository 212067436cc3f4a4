package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

// canaryBackends deploys two one-pod ModelServings, "cana" and "canb", with
// their ModelServers, once for the routing tests.
var canaryOnce sync.Once

func canaryBackends(t *testing.T) {
	t.Helper()
	canaryOnce.Do(func() {
		c := kube(t)
		for _, name := range []string{"cana", "canb"} {
			if err := c.Create(ctx(t), simServing(name, name, 1)); err != nil {
				t.Fatal(err)
			}
			if err := c.Create(ctx(t), modelServer(name, name)); err != nil {
				t.Fatal(err)
			}
		}
	})
	waitReady(t, "cana", 1)
	waitReady(t, "canb", 1)
}

// TestWeightedCanary: a rule splits traffic 80/20 between two servers.
func TestWeightedCanary(t *testing.T) {
	canaryBackends(t)
	route := &networkingv1alpha1.ModelRoute{}
	route.Name, route.Namespace = "canary", ns
	route.Spec.ModelName = "canary"
	route.Spec.Rules = []*networkingv1alpha1.Rule{{Name: "split", TargetModels: []*networkingv1alpha1.TargetModel{
		{ModelServerName: "cana", Weight: ptr.To[uint32](80)},
		{ModelServerName: "canb", Weight: ptr.To[uint32](20)},
	}}}
	create(t, route)
	waitServes(t, "canary")
	counts := map[string]int{}
	const n = 200
	for i := range n {
		r := chat(t, "canary", fmt.Sprintf("canary %d", i), nil)
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
		counts[strings.SplitN(r.chosen, "-", 2)[0]]++
	}
	// 20% of 200: 40 expected; the bounds are more than 4 standard deviations wide.
	if b := counts["canb"]; b < 15 || b > 70 || counts["cana"]+b != n {
		t.Errorf("split %v, want about 160/40", counts)
	}
}

// TestHeaderRule: a header rule sends premium users to another server.
func TestHeaderRule(t *testing.T) {
	canaryBackends(t)
	route := &networkingv1alpha1.ModelRoute{}
	route.Name, route.Namespace = "tiers", ns
	route.Spec.ModelName = "tiers"
	route.Spec.Rules = []*networkingv1alpha1.Rule{
		{Name: "premium", ModelMatch: &networkingv1alpha1.ModelMatch{Headers: map[string]*networkingv1alpha1.StringMatch{"user-type": {Exact: ptr.To("premium")}}},
			TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: "canb"}}},
		{Name: "default", TargetModels: []*networkingv1alpha1.TargetModel{{ModelServerName: "cana"}}},
	}
	create(t, route)
	waitServes(t, "tiers")
	for i := range 10 {
		if r := chat(t, "tiers", fmt.Sprintf("premium %d", i), map[string]string{"user-type": "premium"}); r.status != 200 || !strings.HasPrefix(r.chosen, "canb-") {
			t.Fatalf("premium request served by %q (%d %s), want a canb pod", r.chosen, r.status, r.body)
		}
		if r := chat(t, "tiers", fmt.Sprintf("basic %d", i), map[string]string{"user-type": "basic"}); r.status != 200 || !strings.HasPrefix(r.chosen, "cana-") {
			t.Fatalf("basic request served by %q (%d %s), want a cana pod", r.chosen, r.status, r.body)
		}
	}
}

// TestLoRAAdapter: an adapter loaded on one pod gets the adapter's traffic.
func TestLoRAAdapter(t *testing.T) {
	ms := simServing("lora", "lora", 2, "--max-loras", "2")
	route := simpleRoute("lora", "lora", "lora")
	route.Spec.LoraAdapters = []string{"sql-lora"}
	create(t, ms, modelServer("lora", "lora"), route)
	pods := waitReady(t, "lora", 2)
	target := pods[1]
	body := `{"lora_name":"sql-lora","lora_path":"/adapters/sql-lora"}`
	resp, err := http.Post(fmt.Sprintf("http://%s:8000/v1/load_lora_adapter", target.Status.PodIP), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("loading the adapter on %s: %d", target.Name, resp.StatusCode)
	}
	eventually(t, 20*time.Second, "adapter requests go to the pod that has it", func() error {
		for i := range 8 {
			r := chat(t, "sql-lora", fmt.Sprintf("select %d", i), nil)
			if r.status != http.StatusOK || r.chosen != target.Name {
				return fmt.Errorf("request %d served by %q (%d %s), want %s", i, r.chosen, r.status, r.body, target.Name)
			}
		}
		return nil
	})
}

// TestPrefixStickiness: a repeated long prompt keeps going to one pod.
func TestPrefixStickiness(t *testing.T) {
	create(t, simServing("pfx", "pfx", 3), modelServer("pfx", "pfx"), simpleRoute("pfx", "pfx", "pfx"))
	waitReady(t, "pfx", 3)
	waitServes(t, "pfx")
	prompt := strings.Repeat("The local platform runs the real API server and the real router. ", 60)
	first := chat(t, "pfx", prompt, nil)
	if first.status != http.StatusOK {
		t.Fatalf("%d %s", first.status, first.body)
	}
	for i := range 10 {
		r := chat(t, "pfx", prompt, nil)
		if r.status != http.StatusOK || r.chosen != first.chosen {
			t.Fatalf("repeat %d served by %q (%d), want %q like the first", i, r.chosen, r.status, first.chosen)
		}
	}
}

// TestSaturatedPodAvoided: a pod with a long queue gets no new requests.
func TestSaturatedPodAvoided(t *testing.T) {
	create(t, simServing("sat", "sat", 2, "--max-num-seqs", "1", "--time-scale", "1", "--inter-token-latency", "100"),
		modelServer("sat", "sat"), simpleRoute("sat", "sat", "sat"))
	pods := waitReady(t, "sat", 2)
	waitServes(t, "sat")
	busy := pods[0]
	// Queue 20 long requests directly on one engine.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"model":"sim-sat","prompt":"flood %d","max_tokens":400,"stream":true}`, i)
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://%s:8000/v1/completions", busy.Status.PodIP), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
			if err != nil {
				return
			}
			defer func() { _ = resp.Body.Close() }()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	eventually(t, 20*time.Second, "the busy engine reports a queue", func() error {
		if w := counterSum(t, fmt.Sprintf("http://%s:8000/metrics", busy.Status.PodIP), "vllm:num_requests_waiting"); w < 15 {
			return fmt.Errorf("%v requests waiting", w)
		}
		return nil
	})
	// The router scrapes engines every second; a probe it still sends to
	// the busy pod times out and the check repeats.
	eventually(t, 20*time.Second, "the router avoids the saturated pod", func() error {
		for i := range 5 {
			r := chatWithin(t, 3*time.Second, "sat", fmt.Sprintf("probe %d", i), nil)
			if r.status != http.StatusOK || r.chosen == busy.Name {
				return fmt.Errorf("probe %d served by %q (%d)", i, r.chosen, r.status)
			}
		}
		return nil
	})
}

// counterSum adds up every series of a metric.
func counterSum(t *testing.T, url, name string) float64 {
	t.Helper()
	return metricValue(t, url, name)
}

// metricsExcerpt returns the kthena_ lines of a metrics page, for failure
// messages.
func metricsExcerpt(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "kthena_router_requests") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return fmt.Sprintf("status %d, no kthena_router_requests lines: %s", resp.StatusCode, truncate(string(data), 1000))
	}
	return strings.Join(out, "\n")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
