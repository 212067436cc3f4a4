package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/platform"
)

// TestScaleFromZero: the autoscaling demo's model starts at zero replicas.
// Requests from several clients at once are held by the router, which asks
// the autoscaler for capacity; exactly one scale-up from zero happens, and
// every request is answered once the engine has started. When the model
// is idle it returns to zero, and a request sent right as it is scaled
// down is held and answered too.
func TestScaleFromZero(t *testing.T) {
	deployDemo(t, platform.DemoAutoscaling)
	model := platform.DemoAutoscalingModel
	metricsURL := routerMetricsURL(t)
	server := `model_server="default/` + model + `"`
	if r := replicasOf(t, model); r != 0 {
		t.Fatalf("the demo starts with %d replicas, want 0", r)
	}

	const clients = 8
	began := time.Now()
	var wg sync.WaitGroup
	replies := make([]reply, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = chatWithin(t, 2*time.Minute, model, fmt.Sprintf("client %d at zero", i), nil)
		}()
	}
	wg.Wait()
	coldStart := time.Since(began)
	for i, r := range replies {
		if r.status != http.StatusOK {
			t.Errorf("client %d: %d %s", i, r.status, r.body)
		}
	}
	t.Logf("%d clients answered %.1fs after arriving at zero replicas", clients, coldStart.Seconds())
	if coldStart < 9*time.Second {
		t.Errorf("answered after %s: faster than the engine's 10 s start-up, so no cold start happened", coldStart)
	}
	if got := metricValue(t, metricsURL, "kthena_router_held_requests_total", server, `outcome="released"`); got != clients {
		t.Errorf("router released %v held requests, want %d", got, clients)
	}
	if got := metricValue(t, metricsURL, "kthena_router_cold_starts_total", server); got != 1 {
		t.Errorf("router counted %v cold starts, want 1", got)
	}
	if got := scaleEvents(t, model, "ScaledFromZero"); got != 1 {
		t.Errorf("%d ScaledFromZero events on the policy, want exactly 1", got)
	}

	// Idle: back to zero after the 30 s window (and the 15 s period).
	var zeroAt time.Time
	eventually(t, 2*time.Minute, model+" scaled back to zero", func() error {
		if r := replicasOf(t, model); r != 0 {
			return fmt.Errorf("%d replicas", r)
		}
		zeroAt = time.Now()
		return nil
	})
	// A request racing the scale-down: its pod is going away.
	sent := time.Now()
	raced := chatWithin(t, 2*time.Minute, model, "right as it scales to zero", nil)
	took := time.Since(sent)
	t.Logf("request sent %.2fs after the scale to zero seen: %d after %.1fs", sent.Sub(zeroAt).Seconds(), raced.status, took.Seconds())
	if raced.status != http.StatusOK {
		t.Errorf("request racing the scale-down: %d %s", raced.status, raced.body)
	}
	// Either the last pod, still terminating, served it (no second cold
	// start), or the router held it and woke the model again: a second cold
	// start, seen by the router and the autoscaler alike.
	coldStarts := metricValue(t, metricsURL, "kthena_router_cold_starts_total", server)
	switch {
	case coldStarts == 1 && took >= 9*time.Second:
		t.Errorf("answered after %s without a cold start", took)
	case coldStarts == 2 && took < 9*time.Second:
		t.Errorf("a second cold start counted, but answered after %s, faster than the engine's start-up", took)
	case coldStarts != 1 && coldStarts != 2:
		t.Errorf("router counted %v cold starts, want 1 or 2", coldStarts)
	}
	eventually(t, 10*time.Second, "ScaledFromZero events match the router's cold starts", func() error {
		if got := scaleEvents(t, model, "ScaledFromZero"); float64(got) != coldStarts {
			return fmt.Errorf("%d ScaledFromZero events, router counted %v cold starts", got, coldStarts)
		}
		return nil
	})
	if failed := metricValue(t, metricsURL, "kthena_router_requests_total", `model="`+model+`"`, `status_code="5`); failed != 0 {
		t.Errorf("%v requests of %s failed with 5xx", failed, model)
	}
}

func replicasOf(t *testing.T, name string) int32 {
	t.Helper()
	var ms workloadv1alpha1.ModelServing
	if err := kube(t).Get(ctx(t), client.ObjectKey{Namespace: ns, Name: name}, &ms); err != nil {
		t.Fatal(err)
	}
	if ms.Spec.Replicas == nil {
		return 1
	}
	return *ms.Spec.Replicas
}

// scaleEvents counts the events with reason on the AutoscalingPolicy name.
func scaleEvents(t *testing.T, name, reason string) int {
	t.Helper()
	var list corev1.EventList
	if err := kube(t).List(ctx(t), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "AutoscalingPolicy" && e.InvolvedObject.Name == name && e.Reason == reason {
			n += max(int(e.Count), 1)
		}
	}
	return n
}

// metricValue sums the series of name (with or without labels) whose
// lines contain every one of matches.
func metricValue(t *testing.T, url, name string, matches ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		all := true
		for _, m := range matches {
			all = all && strings.Contains(line, m)
		}
		if !all {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
