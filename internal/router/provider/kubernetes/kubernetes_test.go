package kubernetes_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/provider/kubernetes"
	"github.com/kthena/kthena/internal/router/runner"
	"github.com/kthena/kthena/internal/testing/controlplane"
	kthenawebhook "github.com/kthena/kthena/internal/webhook"
)

// engine is a minimal vLLM-like engine on a real socket that answers with
// its own name.
type engine struct {
	name     string
	ln       net.Listener
	served   atomic.Int64
	inFlight atomic.Int64
}

func startEngine(t *testing.T, name, addr string) *engine {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{name: name, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "vllm:num_requests_waiting{model_name=\"m\"} 0\nvllm:num_requests_running{model_name=\"m\"} 0\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.1\n")
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"object":"list","data":[{"id":"real-model","object":"model"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.served.Add(1)
		e.inFlight.Add(1)
		defer e.inFlight.Add(-1)
		if strings.Contains(string(body), "slow") { // a long generation
			time.Sleep(1500 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"real-model","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, e.name)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func decode(t *testing.T, doc string, obj any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatal(err)
	}
}

// TestKubernetesProvider runs the router in Kubernetes mode against a real
// API server: the router serves the networking webhooks, discovers a
// ModelServer, a ModelRoute and ready Pods, routes to the engines through
// real sockets, and drops pods and routes as soon as their events arrive.
func TestKubernetesProvider(t *testing.T) {
	env, err := controlplane.Start(controlplane.Options{Webhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	c := env.Client

	// Two engines with the same port on two loopback addresses, like two
	// pods with their own pod IPs on the local platform.
	a := startEngine(t, "engine-a", "127.0.0.1:0")
	port := a.ln.Addr().(*net.TCPAddr).Port
	b := startEngine(t, "engine-b", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)))

	var exitErr atomic.Value
	r, err := runner.Start(ctx, runner.Options{
		Addr: "127.0.0.1:0", Kubernetes: true, ScrapeInterval: 50 * time.Millisecond,
		MaxBodyBytes: 1 << 20, StreamIdleTime: time.Minute,
		KubernetesProvider: kubernetes.New(kubernetes.Options{
			Config: env.Config,
			Webhook: &kthenawebhook.ServingOptions{
				Host: env.WebhookHost(), Port: env.WebhookPort(), CertDir: env.WebhookCertDir(),
			},
			OnExit: func(err error) { exitErr.Store(err) },
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) int {
		res, err := hc.Get("http://" + r.Addr() + path)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	chat := func() (int, string) {
		t.Helper()
		res, err := hc.Post("http://"+r.Addr()+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	eventually(t, "router ready (caches synced, first scrape)", func() bool { return get("/readyz") == http.StatusOK })

	// The webhook is the router's: a regex the CRD schema accepts but the
	// networking validator rejects.
	var bad networkingv1alpha1.ModelRoute
	decode(t, `metadata: {name: bad, namespace: default}
spec: {modelName: bad, rules: [{modelMatch: {headers: {x: {regex: "("}}}, targetModels: [{modelServerName: ms}]}]}`, &bad)
	err = c.Create(ctx, &bad)
	if err == nil || !strings.Contains(err.Error(), "not a valid RE2 regular expression") {
		t.Fatalf("invalid route: got %v, want the router's webhook to reject it", err)
	}

	var ms networkingv1alpha1.ModelServer
	decode(t, fmt.Sprintf(`metadata: {name: ms, namespace: default}
spec: {model: real-model, inferenceEngine: vLLM, workloadSelector: {matchLabels: {app: eng}}, workloadPort: {port: %d}}`, port), &ms)
	var mr networkingv1alpha1.ModelRoute
	decode(t, `metadata: {name: m, namespace: default}
spec: {modelName: m, rules: [{targetModels: [{modelServerName: ms}]}]}`, &mr)
	for _, o := range []client.Object{&ms, &mr} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	setReady := func(p *corev1.Pod, ip string, ready bool) {
		t.Helper()
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	newPod := func(name, ip string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "eng"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "engine", Image: "kthena-sim"}}}}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		setReady(p, ip, true)
		return p
	}
	pa, pb := newPod("pa", "127.0.0.1"), newPod("pb", "127.0.0.2")

	endpoints := func() []string {
		eps, _ := r.Store.Endpoints("default/ms", nil)
		var out []string
		for _, e := range eps {
			out = append(out, e.Address)
		}
		return out
	}
	eventually(t, "both pods discovered", func() bool { return len(endpoints()) == 2 })
	eventually(t, "both engines served through the router", func() bool {
		code, _ := chat()
		return code == http.StatusOK && a.served.Load() > 0 && b.served.Load() > 0
	})

	// Not ready: dropped from the store, and no request reaches it.
	setReady(pa, "127.0.0.1", false)
	eventually(t, "not-ready pod dropped", func() bool { return len(endpoints()) == 1 })
	before := a.served.Load()
	for range 10 {
		if code, body := chat(); code != http.StatusOK || !strings.Contains(body, "engine-b") {
			t.Fatalf("with pa not ready: %d %s", code, body)
		}
	}
	if a.served.Load() != before {
		t.Fatal("a not-ready pod still received requests")
	}

	// Ready again, then the other pod deleted.
	setReady(pa, "127.0.0.1", true)
	eventually(t, "pod back", func() bool { return len(endpoints()) == 2 })
	if err := c.Delete(ctx, pb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted pod dropped", func() bool {
		eps := endpoints()
		return len(eps) == 1 && eps[0] == net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	})
	before = b.served.Load()
	for range 10 {
		if code, body := chat(); code != http.StatusOK || !strings.Contains(body, "engine-a") {
			t.Fatalf("with pb deleted: %d %s", code, body)
		}
	}
	if b.served.Load() != before {
		t.Fatal("a deleted pod still received requests")
	}

	// Terminating (deletion timestamp set, still running and ready, as
	// during its preStop hook): no new request reaches it, and those it is
	// serving complete.
	cEng := startEngine(t, "engine-c", net.JoinHostPort("127.0.0.3", strconv.Itoa(port)))
	pc := newPod("pc", "127.0.0.3")
	pc.Finalizers = []string{"kthena.test/hold"}
	if err := c.Update(ctx, pc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "third pod discovered", func() bool { return len(endpoints()) == 2 })
	slow := make(chan string, 16)
	sent := 0
	for cEng.inFlight.Load() == 0 && sent < 16 {
		sent++
		go func() {
			res, err := hc.Post("http://"+r.Addr()+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"slow"}]}`))
			if err != nil {
				slow <- err.Error()
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			slow <- fmt.Sprintf("%d %s", res.StatusCode, body)
		}()
		time.Sleep(50 * time.Millisecond)
	}
	if cEng.inFlight.Load() == 0 {
		t.Fatal("no request reached pc")
	}
	if err := c.Delete(ctx, pc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "terminating pod dropped", func() bool { return len(endpoints()) == 1 })
	before = cEng.served.Load()
	for range 10 {
		if code, body := chat(); code != http.StatusOK || !strings.Contains(body, "engine-a") {
			t.Fatalf("with pc terminating: %d %s", code, body)
		}
	}
	if cEng.served.Load() != before {
		t.Fatal("a terminating pod received new requests")
	}
	for range sent {
		if got := <-slow; !strings.HasPrefix(got, "200 ") {
			t.Fatalf("request in flight on the terminating pod: %s", got)
		}
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(pc), pc); err != nil {
		t.Fatal(err)
	}
	pc.Finalizers = nil
	if err := c.Update(ctx, pc); err != nil {
		t.Fatal(err)
	}

	// An ExternalModelProvider whose credential is a labelled Secret.
	hosted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") != "Bearer sk-k8s" {
			http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hosted"}}]}`)
	}))
	t.Cleanup(hosted.Close)
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default", Labels: map[string]string{
		networkingv1alpha1.ExternalModelProviderCredentialSecretLabel: networkingv1alpha1.ExternalModelProviderCredentialSecretLabelEnabled}},
		StringData: map[string]string{"token": "sk-k8s"}}
	var emp networkingv1alpha1.ExternalModelProvider
	decode(t, fmt.Sprintf(`metadata: {name: hosted, namespace: default}
spec: {baseURL: "%s/v1", insecureSkipVerify: true, auth: {secretRef: {name: creds, key: token}}}`, hosted.URL), &emp)
	var er networkingv1alpha1.ModelRoute
	decode(t, `metadata: {name: hosted, namespace: default}
spec: {modelName: hosted, rules: [{targetModels: [{externalModelProviderName: hosted}]}]}`, &er)
	for _, o := range []client.Object{sec, &emp, &er} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "hosted provider reachable with the Secret's credential", func() bool {
		res, err := hc.Post("http://"+r.Addr()+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"hosted","messages":[]}`))
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK && strings.Contains(string(b), "hosted")
	})

	// Route deleted: 404.
	if err := c.Delete(ctx, &mr); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route gone", func() bool { code, _ := chat(); return code == http.StatusNotFound })
	if err, _ := exitErr.Load().(error); err != nil {
		t.Fatalf("manager stopped: %v", err)
	}
}
