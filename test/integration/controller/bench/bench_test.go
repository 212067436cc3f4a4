// Package bench measures the ModelServing controller at scale against a
// real API server. It is skipped unless KTHENA_BENCH is set:
//
//	KTHENA_BENCH=1 go test ./test/integration/controller/bench -run TestScale -v -timeout 20m
//
// KTHENA_BENCH_MS and KTHENA_BENCH_WORKERS change the number of
// ModelServings (default 500) and concurrent reconciles (default 5).
package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
	"github.com/kthena/kthena/internal/controllermanager"
	"github.com/kthena/kthena/internal/testing/controlplane"
	"github.com/kthena/kthena/test/wrappers"
)

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// countingClient counts every write the controller makes, by kind of call.
func countingClient(writes, statusWrites *atomic.Int64) client.NewClientFunc {
	return func(config *rest.Config, options client.Options) (client.Client, error) {
		c, err := client.NewWithWatch(config, options)
		if err != nil {
			return nil, err
		}
		return interceptor.NewClient(c, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				writes.Add(1)
				return c.Create(ctx, obj, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				writes.Add(1)
				return c.Update(ctx, obj, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				writes.Add(1)
				return c.Patch(ctx, obj, patch, opts...)
			},
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				writes.Add(1)
				return c.Delete(ctx, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				writes.Add(1)
				statusWrites.Add(1)
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
			SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				writes.Add(1)
				statusWrites.Add(1)
				return c.SubResource(sub).Update(ctx, obj, opts...)
			},
		}), nil
	}
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func TestScale(t *testing.T) {
	if os.Getenv("KTHENA_BENCH") == "" {
		t.Skip("set KTHENA_BENCH=1 to run the scale benchmark")
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(nopWriter{})))
	nMS := envInt("KTHENA_BENCH_MS", 500)
	workers := envInt("KTHENA_BENCH_WORKERS", 5)
	const podsPerMS = 2 * 2
	env, err := controlplane.Start(controlplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "bench"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	var writes, statusWrites atomic.Int64
	opts := controllermanager.DefaultOptions()
	opts.MetricsBindAddress, opts.HealthProbeBindAddress = "0", "0"
	opts.Webhook.Enable = false
	opts.Workers = workers
	mgr, err := controllermanager.NewManager(ctx, env.Config, opts, controllermanager.Extra{NewClient: countingClient(&writes, &statusWrites)})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}

	// Sample the Go heap while the controller works.
	var peakHeap atomic.Uint64
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	start := time.Now()
	sem := make(chan struct{}, 32)
	var createErr atomic.Value
	for i := 0; i < nMS; i++ {
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem }()
			ms := wrappers.MakeModelServing(ns, fmt.Sprintf("ms-%04d", i)).Replicas(2).
				Role(wrappers.MakeRole("prefill").Obj()).
				Role(wrappers.MakeRole("decode").Obj()).Obj()
			if err := c.Create(ctx, ms); err != nil {
				createErr.Store(err)
			}
		}(i)
	}
	for i := 0; i < cap(sem); i++ {
		sem <- struct{}{}
	}
	if err, ok := createErr.Load().(error); ok {
		t.Fatal(err)
	}
	created := time.Since(start)

	wantPods := nMS * podsPerMS
	deadline := time.Now().Add(10 * time.Minute)
	var done time.Duration
	for {
		var pods corev1.PodList
		var list workloadv1alpha1.ModelServingList
		if err := c.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		upToDate := 0
		for i := range list.Items {
			st := list.Items[i].Status
			if st.ObservedGeneration == list.Items[i].Generation && st.Replicas == 2 && st.UpdateRevision != "" {
				upToDate++
			}
		}
		if len(pods.Items) == wantPods && upToDate == nMS {
			done = time.Since(start)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged: %d/%d pods, %d/%d statuses", len(pods.Items), wantPods, upToDate, nMS)
		}
		time.Sleep(200 * time.Millisecond)
	}
	converged := writes.Load()
	convergedStatus := statusWrites.Load()

	// Steady state: nothing changes, so nothing is written.
	time.Sleep(5 * time.Second)
	settle := writes.Load()
	time.Sleep(10 * time.Second)
	steady := writes.Load() - settle
	close(stopSampling)
	wg.Wait()
	var events corev1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	eventWrites := 0
	for _, e := range events.Items {
		eventWrites += max(int(e.Count), 1)
	}

	fmt.Printf("\nModelServing controller scale benchmark (%d ModelServings x 2 groups x 2 roles = %d pods, %d workers, GOMAXPROCS %d)\n",
		nMS, wantPods, workers, runtime.GOMAXPROCS(0))
	fmt.Printf("%-44s %s\n", "metric", "value")
	fmt.Printf("%-44s %v\n", "ModelServings created by the test in", created.Round(time.Millisecond))
	fmt.Printf("%-44s %v\n", "all pods created and status up to date in", done.Round(time.Millisecond))
	fmt.Printf("%-44s %d\n", "controller API writes until then", converged)
	fmt.Printf("%-44s %d\n", "  of which status writes", convergedStatus)
	fmt.Printf("%-44s %.2f\n", "API writes per pod (client)", float64(converged)/float64(wantPods))
	fmt.Printf("%-44s %d (%.2f per pod)\n", "events recorded (separate event client)", eventWrites, float64(eventWrites)/float64(wantPods))
	fmt.Printf("%-44s %d\n", "writes in 10 s of steady state", steady)
	fmt.Printf("%-44s %.1f MiB\n", "peak Go heap in use (controller+test client)", float64(peakHeap.Load())/(1<<20))
	fmt.Printf("%-44s %.1f MiB\n", "peak RSS of the process", peakRSS())

	if done > 60*time.Second {
		t.Errorf("took %v, target < 60s", done)
	}
	if perPod := float64(converged) / float64(wantPods); perPod > 3 {
		t.Errorf("%.2f writes per pod, target <= 3", perPod)
	}
	if steady != 0 {
		t.Errorf("%d writes in steady state, want 0", steady)
	}
}
