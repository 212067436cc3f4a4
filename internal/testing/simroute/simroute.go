// Package simroute writes the router's standalone-mode files for a fleet of
// simulated engines: one ModelServer "sim" selecting every engine, one
// ModelRoute to it, and an endpoint per engine address.
package simroute

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Fleet describes the files to write.
type Fleet struct {
	// Model is the model the engines serve (the ModelServer's model).
	Model string
	// Route is the ModelRoute's name and the model clients ask for.
	Route string
	// RouteExtra is appended to the route's spec (e.g. ", rateLimit: {...}").
	RouteExtra string
	// Addrs are the engines' host:port.
	Addrs []string
	// Labels are extra labels of endpoint i, as YAML flow mapping entries
	// (e.g. `"a": "b"`); nil adds none.
	Labels func(i int) string
}

// EndpointsYAML is the endpoints file of f.
func (f Fleet) EndpointsYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `kind: ModelServer
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: sim}
spec: {model: %s, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: sim}}, workloadPort: {port: 8000}}
---
kind: ModelRoute
apiVersion: networking.serving.volcano.sh/v1alpha1
metadata: {name: %s}
spec: {modelName: %s, rules: [{targetModels: [{modelServerName: sim}]}]%s}
---
kind: Endpoints
endpoints:
`, f.Model, f.Route, f.Route, f.RouteExtra)
	for i, a := range f.Addrs {
		extra := ""
		if f.Labels != nil {
			if l := f.Labels(i); l != "" {
				extra = ", " + l
			}
		}
		fmt.Fprintf(&b, "- {name: e%d, address: %q, labels: {app: sim%s}}\n", i, a, extra)
	}
	return b.String()
}

// Write writes f's endpoints file and the router configuration cfg into
// dir and returns their paths.
func (f Fleet) Write(dir, cfg string) (endpointsFile, configFile string, err error) {
	endpointsFile, configFile = filepath.Join(dir, "endpoints.yaml"), filepath.Join(dir, "router.yaml")
	if err := os.WriteFile(endpointsFile, []byte(f.EndpointsYAML()), 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(configFile, []byte(cfg), 0o644); err != nil {
		return "", "", err
	}
	return endpointsFile, configFile, nil
}
