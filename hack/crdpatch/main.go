// Command crdpatch adjusts generated CRDs where the schema controller-gen
// derives from Kubernetes' own types is stricter than Kubernetes itself.
//
// Pod templates embed core/v1 PodSpec, whose hostAliases became a list map
// keyed by ip in recent API versions. The API server then rejects two host
// aliases with the same IP inside a ModelServing, although a Pod accepts them
// and upstream Kthena's CRD does too. Such lists are made atomic again.
// The files are edited as text so that the generated layout is kept.
//
// Usage: go run ./hack/crdpatch FILE...
package main

import (
	"fmt"
	"os"
	"strings"
)

// relaxed names the list properties whose list-map keys are dropped.
var relaxed = []string{"hostAliases"}

func main() {
	for _, path := range os.Args[1:] {
		data, err := os.ReadFile(path)
		if err == nil {
			if out, changed := relax(string(data)); changed {
				err = os.WriteFile(path, []byte(out), 0o644)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "crdpatch %s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

func indent(line string) int { return len(line) - len(strings.TrimLeft(line, " ")) }

// relax rewrites, inside each relaxed property's block, the list-map
// declaration at the property's own level into an atomic list.
func relax(text string) (string, bool) {
	lines := strings.Split(text, "\n")
	out := make([]string, 0, len(lines))
	changed := false
	blockIndent := -1 // indent of the relaxed property's key, or -1 outside one
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if blockIndent >= 0 && trimmed != "" && indent(line) <= blockIndent {
			blockIndent = -1
		}
		for _, name := range relaxed {
			if trimmed == name+":" {
				blockIndent = indent(line)
			}
		}
		if blockIndent >= 0 && indent(line) == blockIndent+2 {
			switch trimmed {
			case "x-kubernetes-list-map-keys:":
				for i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") && indent(lines[i+1]) >= blockIndent+2 {
					i++
				}
				changed = true
				continue
			case "x-kubernetes-list-type: map":
				line = strings.Replace(line, "map", "atomic", 1)
				changed = true
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n"), changed
}
