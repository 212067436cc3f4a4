package autoscalebench

import (
	"fmt"
	"strings"
	"time"
)

// Config is one scaling configuration under test.
type Config struct {
	Name string
	// Description says what it is, for the report.
	Description string
	// Static: a fixed replica count (Options.StaticReplicas), no policy.
	Static      bool
	MinReplicas int32
	// Behavior picks the policy's behaviour: "defaults" or "burst".
	Behavior string
}

// Configs are the benchmark's configurations, in run order.
func Configs() []Config {
	return []Config{
		{Name: "static-peak", Static: true, Description: "fixed replicas for the burst's peak, no policy"},
		{Name: "defaults", MinReplicas: 1, Behavior: "defaults", Description: "AutoscalingPolicy with upstream's default behaviour, which is also the default Kthena ships; minReplicas 1 (scale to zero off)"},
		{Name: "defaults-zero", MinReplicas: 0, Behavior: "defaults", Description: "the same with minReplicas 0 (scale to zero on; the router holds requests at zero)"},
		{Name: "burst", MinReplicas: 1, Behavior: "burst", Description: "panic mode on (the CRD's values once a panicPolicy is written) and a 2 min scale-down window; minReplicas 1"},
		{Name: "burst-zero", MinReplicas: 0, Behavior: "burst", Description: "the same with minReplicas 0"},
	}
}

// DefaultConfigNames are the configurations run unless asked otherwise.
var DefaultConfigNames = []string{"static-peak", "defaults", "defaults-zero", "burst-zero"}

// SelectConfigs returns the named configurations in the given order.
func SelectConfigs(names []string) ([]Config, error) {
	all := Configs()
	var out []Config
	for _, n := range names {
		n = strings.TrimSpace(n)
		found := false
		for _, c := range all {
			if c.Name == n {
				out = append(out, c)
				found = true
			}
		}
		if !found {
			var known []string
			for _, c := range all {
				known = append(known, c.Name)
			}
			return nil, fmt.Errorf("unknown configuration %q (known: %s)", n, strings.Join(known, ", "))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no configuration selected")
	}
	return out, nil
}

// behaviorYAML is the policy's behaviour with every time divided by
// compression (the autoscaler's clock runs as fast as the trace's).
func behaviorYAML(kind string, compression float64) string {
	d := func(real time.Duration) string {
		return fmt.Sprintf("%dms", (time.Duration(float64(real) / compression)).Milliseconds())
	}
	downWindow, panicPercent, panicHold, panicPeriod := 5*time.Minute, 0, time.Duration(0), time.Duration(0)
	if kind == "burst" {
		downWindow, panicPercent, panicHold, panicPeriod = 2*time.Minute, 1000, time.Minute, time.Minute
	}
	return fmt.Sprintf(`  behavior:
    scaleUp:
      stablePolicy: {instances: 4, percent: 100, period: %s, selectPolicy: Or, stabilizationWindow: 0s}
      panicPolicy: {percent: %d, period: %s, panicThresholdPercent: 200, panicModeHold: %s}
    scaleDown: {instances: 0, percent: 100, period: %s, selectPolicy: Or, stabilizationWindow: %s}
`, d(time.Minute), panicPercent, d(panicPeriod), d(panicHold), d(time.Minute), d(downWindow))
}

// PanicWindow is the burst configurations' panic window in wall time.
func PanicWindow(compression float64) time.Duration {
	return time.Duration(float64(time.Minute) / compression)
}

// Engine is the simulated engine every pod runs.
type Engine struct {
	TTFT, ITL    time.Duration
	MaxNumSeqs   int
	StartupDelay time.Duration
}

const (
	benchModel = "bench"
	benchImage = "ghcr.io/llm-d/llm-d-inference-sim:v0.5.1"
)

// Scaling is what the policy reads.
type Scaling struct {
	// RunningTarget: num_requests_running per replica; WaitingTarget:
	// num_requests_waiting per replica.
	RunningTarget, WaitingTarget int
	MaxReplicas                  int32
}

// manifests are the ModelServing, ModelServer, ModelRoute and (unless
// static) AutoscalingPolicy of one run.
func manifests(c Config, e Engine, s Scaling, staticReplicas int32, compression float64) string {
	replicas := c.MinReplicas
	if c.Static {
		replicas = staticReplicas
	}
	out := fmt.Sprintf(`apiVersion: workload.serving.volcano.sh/v1alpha1
kind: ModelServing
metadata: {name: %[1]s, namespace: default}
spec:
  replicas: %[2]d
  template:
    roles:
    - name: engine
      replicas: 1
      workerReplicas: 0
      entryTemplate:
        metadata:
          labels: {app: kthena-bench-%[1]s}
        spec:
          terminationGracePeriodSeconds: 5
          containers:
          - name: engine
            image: %[3]s
            args: ["--model", "%[1]s", "--port", "8000", "--time-to-first-token", "%[4]s", "--inter-token-latency", "%[5]s", "--max-num-seqs", "%[6]d", "--startup-delay", "%[7]s", "--shutdown-grace", "4s"]
            ports:
            - {name: http, containerPort: 8000}
            readinessProbe:
              httpGet: {path: /health, port: http}
              periodSeconds: 1
---
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelServer
metadata: {name: %[1]s, namespace: default}
spec:
  model: %[1]s
  inferenceEngine: vLLM
  workloadSelector:
    matchLabels: {app: kthena-bench-%[1]s}
  workloadPort: {port: 8000}
---
apiVersion: networking.serving.volcano.sh/v1alpha1
kind: ModelRoute
metadata: {name: %[1]s, namespace: default}
spec:
  modelName: %[1]s
  rules:
  - name: default
    targetModels:
    - modelServerName: %[1]s
`, benchModel, replicas, benchImage, e.TTFT, e.ITL, e.MaxNumSeqs, e.StartupDelay)
	if c.Static {
		return out
	}
	return out + fmt.Sprintf(`---
apiVersion: workload.serving.volcano.sh/v1alpha1
kind: AutoscalingPolicy
metadata: {name: %[1]s, namespace: default}
spec:
  tolerancePercent: 10
  metrics:
  - {name: num_requests_running, targetValue: "%[2]d"}
  - {name: num_requests_waiting, targetValue: "%[3]d"}
%[4]s  homogeneousTarget:
    minReplicas: %[5]d
    maxReplicas: %[6]d
    target:
      targetRef: {kind: ModelServing, name: %[1]s}
      metricSources:
        num_requests_running: {pod: {port: 8000}}
        num_requests_waiting: {pod: {port: 8000}}
`, benchModel, s.RunningTarget, s.WaitingTarget, behaviorYAML(c.Behavior, compression), c.MinReplicas, s.MaxReplicas)
}
