package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controller/autoscaling"
	"github.com/kthena/kthena/internal/router/coldstart"
	"github.com/kthena/kthena/internal/router/provider/kubernetes"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/testing/controlplane"
)

// A model at zero in Kubernetes mode: the router holds the request, asks
// for capacity on the ModelServing its ModelServer selects (the
// autoscaler's scale-from-zero annotation), and answers the request once
// a pod is ready. A ModelServer that selects no ModelServing fails at once.
func TestScaleFromZeroHold(t *testing.T) {
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := env.Client

	eng := startEngine(t, "engine-a", "127.0.0.1:0")
	port := eng.ln.Addr().(*net.TCPAddr).Port

	var mserving workloadv1alpha1.ModelServing
	decode(t, `metadata: {name: llama, namespace: default}
spec:
  replicas: 0
  template:
    roles:
    - name: engine
      replicas: 1
      entryTemplate:
        metadata: {labels: {app: llama}}
        spec: {containers: [{name: engine, image: kthena-sim}]}`, &mserving)
	var ms, orphan networkingv1alpha1.ModelServer
	decode(t, fmt.Sprintf(`metadata: {name: ms, namespace: default}
spec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: llama}}, workloadPort: {port: %d}}`, port), &ms)
	decode(t, `metadata: {name: orphan, namespace: default}
spec: {inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: nothing}}, workloadPort: {port: 8000}}`, &orphan)
	var mr, mo networkingv1alpha1.ModelRoute
	decode(t, `metadata: {name: m, namespace: default}
spec: {modelName: m, rules: [{targetModels: [{modelServerName: ms}]}]}`, &mr)
	decode(t, `metadata: {name: o, namespace: default}
spec: {modelName: o, rules: [{targetModels: [{modelServerName: orphan}]}]}`, &mo)
	for _, o := range []client.Object{&mserving, &ms, &orphan, &mr, &mo} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	waker, err := kubernetes.NewWaker(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The waker alone: selection by the role template's labels.
	if err := waker.Wake(ctx, &orphan, 1); !errors.Is(err, coldstart.ErrNoWorkload) {
		t.Fatalf("orphan: %v, want ErrNoWorkload", err)
	}

	r, err := runner.Start(ctx, runner.Options{
		Addr: "127.0.0.1:0", Kubernetes: true, ScrapeInterval: 50 * time.Millisecond,
		MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute,
		KubernetesProvider: kubernetes.New(kubernetes.Options{Config: env.Config}),
		Waker:              waker,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	hc := &http.Client{Timeout: 30 * time.Second}
	chat := func(model string) (int, string) {
		res, err := hc.Post("http://"+r.Addr()+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	eventually(t, "routes known", func() bool {
		code, _ := chat("o")
		return code == http.StatusServiceUnavailable
	})
	if code, body := chat("o"); code != http.StatusServiceUnavailable || !strings.Contains(body, "selects no ModelServing") {
		t.Fatalf("orphan model: %d %s", code, body)
	}

	type answer struct {
		code int
		body string
	}
	answers := make(chan answer, 3)
	for range 3 {
		go func() { code, body := chat("m"); answers <- answer{code, body} }()
	}
	var woken time.Time
	eventually(t, "scale-from-zero requested on the ModelServing", func() bool {
		var got workloadv1alpha1.ModelServing
		if err := c.Get(ctx, client.ObjectKeyFromObject(&mserving), &got); err != nil {
			return false
		}
		v, ok := got.Annotations[autoscaling.ScaleFromZeroAnnotation]
		if ok {
			woken, err = time.Parse(time.RFC3339Nano, v)
		}
		return ok && err == nil
	})
	if time.Since(woken) > time.Minute {
		t.Fatalf("wake time %s", woken)
	}
	// The wake is repeated while requests are held, with their number.
	eventually(t, "wake repeated with the demand", func() bool {
		var got workloadv1alpha1.ModelServing
		_ = c.Get(ctx, client.ObjectKeyFromObject(&mserving), &got)
		again, _ := time.Parse(time.RFC3339Nano, got.Annotations[autoscaling.ScaleFromZeroAnnotation])
		return again.After(woken) && got.Annotations[autoscaling.ScaleFromZeroDemandAnnotation] == "3"
	})
	select {
	case a := <-answers:
		t.Fatalf("answered before any pod: %d %s", a.code, a.body)
	default:
	}

	// What the autoscaler and the ModelServing controller would do: a pod.
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "llama-0-engine-0-0", Namespace: "default",
		Labels: map[string]string{"app": "llama", workloadv1alpha1.ModelServingNameLabelKey: "llama"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "kthena-sim"}}}}
	if err := c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}}
	if err := c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case a := <-answers:
			if a.code != http.StatusOK || !strings.Contains(a.body, "engine-a") {
				t.Fatalf("held request: %d %s", a.code, a.body)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("held request not answered after the pod was ready")
		}
	}
	metrics := scrape(t, r)
	for _, want := range []string{
		`kthena_router_held_requests_total{model_server="default/ms",outcome="released"} 3`,
		`kthena_router_cold_starts_total{model_server="default/ms"} 1`,
		`kthena_router_wake_requests_total{model_server="default/orphan",result="no_workload"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(metrics, `kthena_router_wake_requests_total{model_server="default/ms",result="ok"}`) {
		t.Error("no successful wake counted")
	}
}

func scrape(t *testing.T, r *runner.Router) string {
	t.Helper()
	var b strings.Builder
	mfs, err := r.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			v := m.GetCounter().GetValue()
			fmt.Fprintf(&b, "%s{%s} %v\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String()
}
