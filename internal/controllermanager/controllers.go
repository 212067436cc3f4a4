package controllermanager

import (
	"fmt"
	"sort"
	"strings"
)

// enabledControllers resolves a --controllers list against the known
// controllers. "*" enables every controller that is on by default, "x" or
// "+x" enables x, "-x" disables x; later items win. An unknown name is an error.
func enabledControllers(spec []string, known map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	for _, raw := range spec {
		item := strings.TrimSpace(raw)
		switch {
		case item == "":
			continue
		case item == "*":
			for name, onByDefault := range known {
				if onByDefault {
					out[name] = true
				}
			}
			continue
		}
		on := true
		name := item
		if strings.HasPrefix(item, "-") {
			on, name = false, item[1:]
		} else if strings.HasPrefix(item, "+") {
			name = item[1:]
		}
		if _, ok := known[name]; !ok {
			return nil, fmt.Errorf("unknown controller %q (known: %s)", name, strings.Join(sortedKeys(known), ", "))
		}
		if on {
			out[name] = true
		} else {
			delete(out, name)
		}
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
