package sim_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	"github.com/kthena/kthena/internal/sim"
	"github.com/kthena/kthena/internal/tokenizer"
)

// A router test starts a fleet in-process, sends traffic to the engines'
// addresses, and asks each engine what it has cached.
func ExampleStartLocal() {
	cfg := sim.Config{Mode: sim.ModeEcho, TimeScale: 0.01} // 100x faster than real time
	fleet, err := sim.StartLocal(context.Background(), logr.Discard(), cfg, cfg)
	if err != nil {
		panic(err)
	}
	defer fleet.Close()

	system := strings.Repeat("You answer questions about Kubernetes. ", 20)
	body := fmt.Sprintf(`{"model":%q,"max_tokens":4,"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}]}`,
		sim.DefaultModel, system)
	resp, err := http.Post(fleet.URL(0)+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	// The same prompt, tokenized the way the engines do it.
	tok := fleet.Engines[0].Tokenizer()
	prompt, _ := tok.EncodeChat([]tokenizer.Message{{Role: "system", Content: system}, {Role: "user", Content: "hi"}}, true)
	fmt.Println("status:", resp.StatusCode)
	fmt.Println("engine 0 has the prefix:", fleet.Engines[0].CachedPrefixTokens(prompt, "") > 100)
	fmt.Println("engine 1 has the prefix:", fleet.Engines[1].CachedPrefixTokens(prompt, "") > 100)
	// Output:
	// status: 200
	// engine 0 has the prefix: true
	// engine 1 has the prefix: false
}
