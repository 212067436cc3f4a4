package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// TestPDDemo deploys the prefill/decode demo of `kthena up --demo=pd` (two
// serving groups of a prefill and a decode engine, a ModelServer with
// pdGroup and the nixl connector) and drives it through the router.
func TestPDDemo(t *testing.T) {
	deployPDDemo(t)
	t.Run("Serves", testPDServes)
	// Deleting a pod through the API server terminates it gracefully: the
	// requests it holds finish, and it may still have handed a prefill's
	// KV to nobody yet.
	t.Run("PrefillPodDeleted", func(t *testing.T) { testPDEngineLost(t, "prefill", deletePDPod) })
	// A killed process ends at once, in the middle of its requests.
	t.Run("DecodeProcessKilled", func(t *testing.T) { testPDEngineLost(t, "decode", killPDProcess) })
	t.Run("OpenAIClient", testPDOpenAIClient)
}

// testPDServes: non-streaming and streaming requests for demo-pd are
// answered; every decision is mode "pd" with a prefill pod and a decode
// pod of the same serving group; the prefill pods computed the prompts
// (their prompt token counters grow), the decode pods generated the
// answers (their generation token counters grow) without computing any
// prompt (the KV came from the prefill pod). The prompts are long and
// start differently: the router's default decider lets a decode pod
// prefill a short or cached prompt itself. A short prompt is answered too,
// by a decode pod.
func testPDServes(t *testing.T) {
	waitReady(t, pdLabel, pdPods)
	pods := pdPodsByKey(t)
	short := pdChat("Hello! What is Kthena?", false, 8)
	if !short.ok() {
		t.Errorf("short prompt not answered: %s", short)
	} else if short.mode != "pd" || pods[short.pair.Decode].role != "decode" {
		t.Errorf("short prompt: decision mode %q, pair %+v; want mode pd and a decode pod", short.mode, short.pair)
	}
	before := scrapeAll(t)
	prefillUsed, decodeUsed := map[string]bool{}, map[string]bool{}
	for i := range 6 {
		for _, stream := range []bool{false, true} {
			prompt := platform.DemoPDPrompt(fmt.Sprintf("PD request %d (stream %v) at %d", i, stream, time.Now().UnixNano()))
			r := pdChat(prompt, stream, 8)
			if !r.ok() {
				t.Errorf("request %d (stream %v) not answered: %s", i, stream, r)
				continue
			}
			if stream && !r.done {
				t.Errorf("request %d: stream without [DONE]: %s", i, r)
			}
			if err := checkPDDecision(r, pods); err != nil {
				t.Errorf("request %d (stream %v): %v", i, stream, err)
				continue
			}
			prefillUsed[r.pair.Prefill], decodeUsed[r.pair.Decode] = true, true
		}
	}
	var after map[string]engineTokens
	eventually(t, 10*time.Second, "the engines' token counters show the work", func() error {
		after = scrapeAll(t)
		var prefillPrompt, decodeGen float64
		for key, p := range pods {
			b, a := before[key], after[key]
			switch p.role {
			case "prefill":
				prefillPrompt += a.prompt - b.prompt
			case "decode":
				decodeGen += a.generation - b.generation
			}
		}
		if prefillPrompt <= 0 || decodeGen <= 0 {
			return fmt.Errorf("prompt tokens on prefill pods +%v, generation tokens on decode pods +%v (before %v, after %v)", prefillPrompt, decodeGen, before, after)
		}
		for key := range prefillUsed {
			if after[key].prompt <= before[key].prompt {
				return fmt.Errorf("prefill pod %s was chosen but its prompt tokens stayed at %v", key, after[key].prompt)
			}
		}
		for key := range decodeUsed {
			if after[key].generation <= before[key].generation {
				return fmt.Errorf("decode pod %s was chosen but its generation tokens stayed at %v", key, after[key].generation)
			}
		}
		return nil
	})
	for key, p := range pods {
		if p.role == "decode" && after[key].prompt != before[key].prompt {
			t.Errorf("decode pod %s computed %v prompt tokens: it prefilled instead of pulling the KV from a prefill pod", key, after[key].prompt-before[key].prompt)
		}
	}
	t.Logf("prefill pods used %v, decode pods used %v", keys(prefillUsed), keys(decodeUsed))
}

// testPDEngineLost: while two clients send requests (long prompts, so
// that all of them are disaggregated), one engine of the
// given role is lost. Every request is answered, every decision pairs pods
// of one group, requests sent while the victim's group lacks it go to the
// other pair, the ModelServing controller brings the pod back and the
// router uses its group again.
func testPDEngineLost(t *testing.T, role string, lose func(*testing.T, *corev1.Pod)) {
	ready := waitReady(t, pdLabel, pdPods)
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })
	var victim *corev1.Pod
	for i := range ready {
		if ready[i].Labels[workloadv1alpha1.RoleLabelKey] == role {
			victim = &ready[i]
			break
		}
	}
	if victim == nil {
		t.Fatalf("no ready %s pod", role)
	}
	group := victim.Labels[workloadv1alpha1.GroupNameLabelKey]
	pods := pdPodsByKey(t)

	var (
		mu      sync.Mutex
		results []pdReply
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	// A killed decode engine cuts the streams it is sending, which nobody
	// can finish for the client; non-streaming requests can be moved to
	// the other pair. A gracefully deleted prefill pod cuts nothing, so
	// one of its clients streams.
	stream := role == "prefill"
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				prompt := platform.DemoPDPrompt(fmt.Sprintf("client %d request %d at %d while a %s engine goes away", w, i, time.Now().UnixNano(), role))
				r := pdChat(prompt, stream && w == 1, 8)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	snapshot := func() []pdReply {
		mu.Lock()
		defer mu.Unlock()
		return append([]pdReply(nil), results...)
	}
	eventually(t, 20*time.Second, "requests answered before the engine is lost", func() error {
		if n := len(snapshot()); n < 4 {
			return fmt.Errorf("%d requests so far", n)
		}
		return nil
	})
	lost := time.Now()
	lose(t, victim)
	// readyAt is when the API server reported the replacement ready (to
	// the second, rounded down); notReadyAt is when the last poll that
	// found it not ready was sent: the router, which learns readiness
	// from the API server too, cannot have used it before.
	var readyAt, notReadyAt, seenReady time.Time
	replaced := func() error {
		p := podNamed(t, pdLabel, victim.Name)
		if p == nil {
			return fmt.Errorf("not recreated yet")
		}
		if p.DeletionTimestamp != nil || !podReady(p) {
			return fmt.Errorf("not ready (terminating %v)", p.DeletionTimestamp != nil)
		}
		if p.UID == victim.UID && restarts(p) <= restarts(victim) {
			return fmt.Errorf("still the lost engine (no restart seen)")
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				readyAt = c.LastTransitionTime.Time
			}
		}
		return nil
	}
	eventually(t, 90*time.Second, fmt.Sprintf("%s pod %s replaced and ready", role, victim.Name), func() error {
		polled := time.Now()
		if err := replaced(); err != nil {
			notReadyAt = polled
			return err
		}
		seenReady = time.Now()
		return nil
	})
	waitReady(t, pdLabel, pdPods)
	// Soft: the checks below say more when the router is wrong.
	backAgain := func() bool {
		for _, r := range snapshot() {
			if r.start.After(readyAt) && r.ok() && r.pair.Group == group {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(20 * time.Second); !backAgain(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("no request served by group %s in the 20s after its %s pod came back", group, role)
			break
		}
	}
	stopLoad()

	all := snapshot()
	var failed, unpaired []string
	// The outage: from half a second after the loss (the router learns of
	// it through the API server, or from a refused connection) until the
	// replacement was last seen not ready. Only the other group can pair
	// then.
	from, to := lost.Add(500*time.Millisecond), notReadyAt
	inOutage, wrongGroup := 0, []string{}
	for i, r := range all {
		if !r.ok() {
			failed = append(failed, fmt.Sprintf("#%d (%.1fs after the loss): %s", i, r.start.Sub(lost).Seconds(), r))
			continue
		}
		if err := checkPDDecision(r, pods); err != nil {
			unpaired = append(unpaired, fmt.Sprintf("#%d: %v", i, err))
		}
		if r.start.After(from) && r.end.Before(to) {
			inOutage++
			if r.pair.Group == group {
				wrongGroup = append(wrongGroup, fmt.Sprintf("#%d: %s", i, r))
			}
		}
	}
	t.Logf("%d requests; %s %s lost, seen back within %.1fs; %d requests inside the outage of %.1fs",
		len(all), role, victim.Name, seenReady.Sub(lost).Seconds(), inOutage, max(to.Sub(from), 0).Seconds())
	if len(failed) > 0 {
		t.Errorf("%d of %d requests not answered:\n%s", len(failed), len(all), strings.Join(first(failed, 5), "\n"))
	}
	if len(unpaired) > 0 {
		t.Errorf("%d of %d decisions break the PD contract:\n%s", len(unpaired), len(all), strings.Join(first(unpaired, 5), "\n"))
	}
	if len(wrongGroup) > 0 {
		t.Errorf("%d requests went to group %s while its %s pod was gone:\n%s", len(wrongGroup), group, role, strings.Join(first(wrongGroup, 5), "\n"))
	}
	if to.Sub(from) > time.Second && inOutage == 0 {
		t.Errorf("no request answered during the %.1fs outage", to.Sub(from).Seconds())
	}
}

func deletePDPod(t *testing.T, p *corev1.Pod) {
	t.Helper()
	if err := kube(t).Delete(ctx(t), p); err != nil {
		t.Fatalf("deleting pod %s: %v", p.Name, err)
	}
}

func killPDProcess(t *testing.T, p *corev1.Pod) {
	t.Helper()
	pid := containerPID(t, p)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing engine process group %d of pod %s: %v", pid, p.Name, err)
	}
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

// testPDOpenAIClient: the openai npm client's chat and completion
// requests, streaming and not, with a long prompt through the PD route;
// a prefill pod computed the prompt and the decode pods generated the
// answers.
func testPDOpenAIClient(t *testing.T) {
	dir := filepath.Join(env.repo, "test", "e2e", "openai-client")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		t.Fatalf("the openai npm client is not installed: run hack/system-deps.sh (make test does)")
	}
	waitReady(t, pdLabel, pdPods)
	pods := pdPodsByKey(t)
	before := scrapeAll(t)
	prompt := platform.DemoPDPrompt(fmt.Sprintf("openai npm client at %d", time.Now().UnixNano()))
	out, err := exec.Command("node", filepath.Join(dir, "client.mjs"), env.routerURL, platform.DemoPDModel, prompt).CombinedOutput()
	if err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, out)
	}
	var res struct {
		Chat struct {
			Content string
			Usage   struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		ChatStream struct {
			Chunks  int
			Content string
			Usage   *struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		Completion       struct{ Text string }
		CompletionStream struct {
			Chunks int
			Text   string
		}
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	if strings.TrimSpace(res.Chat.Content) == "" || res.Chat.Usage.CompletionTokens == 0 {
		t.Errorf("chat: empty answer or usage: %+v", res.Chat)
	}
	if res.ChatStream.Chunks < 2 || strings.TrimSpace(res.ChatStream.Content) == "" {
		t.Errorf("chat stream: %d chunks, content %q", res.ChatStream.Chunks, res.ChatStream.Content)
	}
	if res.ChatStream.Usage == nil || res.ChatStream.Usage.CompletionTokens == 0 {
		t.Errorf("chat stream: no usage chunk: %+v", res.ChatStream)
	}
	if strings.TrimSpace(res.Completion.Text) == "" {
		t.Errorf("completion: empty text")
	}
	if res.CompletionStream.Chunks < 2 || strings.TrimSpace(res.CompletionStream.Text) == "" {
		t.Errorf("completion stream: %d chunks, text %q", res.CompletionStream.Chunks, res.CompletionStream.Text)
	}
	var after map[string]engineTokens
	eventually(t, 10*time.Second, "the client's requests went through prefill and decode pods", func() error {
		after = scrapeAll(t)
		var prefillPrompt, decodeGen float64
		for key, p := range pods {
			switch p.role {
			case "prefill":
				prefillPrompt += after[key].prompt - before[key].prompt
			case "decode":
				decodeGen += after[key].generation - before[key].generation
			}
		}
		// At least the first request is disaggregated; the client sends
		// the same prompt four times, and the router's decider may let
		// the decode pod that holds its prefix serve the others alone.
		if prefillPrompt < 500 || decodeGen <= 0 {
			return fmt.Errorf("prompt tokens on prefill pods +%v (want a long prompt's, 500 or more), generation tokens on decode pods +%v", prefillPrompt, decodeGen)
		}
		return nil
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("... and %d more", len(s)-n))
	}
	return s
}
