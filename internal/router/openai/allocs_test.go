//go:build !race

package openai

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kthena/kthena/internal/testing/allocbudget"
)

// parseBodies are BenchmarkParse's bodies and a small chat request.
func parseBodies() map[string][]byte {
	plain := strings.Repeat("lorem ipsum ", 200<<10/12)
	lines := strings.Repeat(strings.Repeat("x", 79)+"\n", 200<<10/80)
	chat := func(text string) []byte {
		return []byte(fmt.Sprintf(`{"messages":[{"role":"system","content":%q},{"role":"user","content":"hi"}],"model":"m","stream":true}`, text))
	}
	return map[string][]byte{
		"chat, 200 KiB plain prompt":    chat(plain),
		"chat, 200 KiB prompt of lines": chat(lines),
		"chat, 100 B prompt":            chat(strings.Repeat("lorem ipsum ", 8)),
	}
}

// TestParseAllocationBudget guards Parse's allocations and bytes per call
// (BenchmarkParse's bodies) against testdata/alloc_budget.json, as
// TestAllocationBudget does for the whole serve path. After a deliberate
// change: go test ./internal/router/openai -run TestParseAllocationBudget
// -args -update-alloc-budget.
func TestParseAllocationBudget(t *testing.T) {
	measured := map[string]allocbudget.Cost{}
	for name, body := range parseBodies() {
		measured[name] = allocbudget.Measure(20, 200, func() {
			if r, err := Parse(body, 8192); err != nil || r.Model != "m" {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
	allocbudget.Check(t, filepath.Join("testdata", "alloc_budget.json"), "parse", measured)
}
