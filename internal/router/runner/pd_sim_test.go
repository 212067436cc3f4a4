package runner

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"

	"github.com/kthena/kthena/internal/sim"
)

// simPD starts prefill and decode simulator engines in two groups
// (p0,d0 | p1,d1) behind a PD server and returns the harness and fleet.
func simPD(t *testing.T, engine sim.Flavor, connector string) (*harness, *sim.Fleet) {
	t.Helper()
	cfg := func(role sim.KVRole) sim.Config {
		return sim.Config{Engine: engine, Mode: sim.ModeEcho, TimeScale: 0.01, KVRole: role}
	}
	f, err := sim.StartLocal(context.Background(), logr.Discard(), cfg(sim.RolePrefill), cfg(sim.RoleDecode), cfg(sim.RolePrefill), cfg(sim.RoleDecode))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	var b strings.Builder
	b.WriteString("kind: Endpoints\nendpoints:\n")
	for i, addr := range f.Addrs {
		role := []string{"prefill", "decode"}[i%2]
		extra := ""
		if role == "prefill" {
			// The simulator serves its bootstrap rooms on its HTTP port.
			_, port, _ := net.SplitHostPort(addr)
			extra = fmt.Sprintf(", kthena.io/bootstrap-port: '%s'", port)
		}
		fmt.Fprintf(&b, "- {name: e%d, address: %q, labels: {app: s, role: %s, group: g%d%s}}\n", i, addr, role, i/2, extra)
	}
	engineName := "vLLM"
	if engine == sim.SGLang {
		engineName = "SGLang"
	}
	h := start(t, docs(pdServer("s", engineName, connector, "\n  model: "+sim.DefaultModel), pdRoute("llama", "s"), b.String()), alwaysPD)
	return h, f
}

// Against real simulated prefill and decode engines, every request is
// answered, the prompt is computed on prefill engines only and the output
// generated on decode engines only.
func TestPDWithSimulatedEngines(t *testing.T) {
	for _, c := range []struct {
		name      string
		engine    sim.Flavor
		connector string
	}{{"vLLM nixl", sim.VLLM, "nixl"}, {"SGLang bootstrap", sim.SGLang, ""}} {
		t.Run(c.name, func(t *testing.T) {
			h, f := simPD(t, c.engine, c.connector)
			var wg sync.WaitGroup
			errs := make(chan string, 32)
			for i := 0; i < 16; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					stream := i%2 == 0
					body := fmt.Sprintf(`{"model":"llama","max_tokens":8,"ignore_eos":true,"stream":%v,"messages":[{"role":"user","content":"question %d: explain prefill and decode disaggregation in a few words"}]}`, stream, i)
					r := h.do("/v1/chat/completions", body, decide)
					if r.status != 200 {
						errs <- fmt.Sprintf("request %d: %d %s", i, r.status, r.body)
						return
					}
					d := decisionOf(t, r)
					if d.Pair.Prefill == "" || d.Pair.Decode == "" || d.Pair.Prefill[len(d.Pair.Prefill)-1]-'0' != d.Pair.Decode[len(d.Pair.Decode)-1]-'0'-1 {
						errs <- fmt.Sprintf("request %d: pair %+v", i, d.Pair)
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			var prefillGen, decodeGen, prefillPrompt, decodePrompt int64
			for i, e := range f.Engines {
				tot := e.Stats().Totals
				if i%2 == 0 {
					prefillGen += tot.GenerationTokens
					prefillPrompt += tot.PromptTokens
				} else {
					decodeGen += tot.GenerationTokens
					decodePrompt += tot.PromptTokens
				}
			}
			if prefillPrompt == 0 || decodeGen != 16*8 || prefillGen > 16 {
				t.Fatalf("prefill engines: %d prompt, %d generated tokens; decode engines: %d prompt, %d generated", prefillPrompt, prefillGen, decodePrompt, decodeGen)
			}
			if decodePrompt >= prefillPrompt {
				t.Fatalf("decode engines computed %d prompt tokens, prefill engines %d: the KV was not handed over", decodePrompt, prefillPrompt)
			}
		})
	}
}
