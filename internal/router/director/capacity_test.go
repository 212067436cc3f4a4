package director

import (
	"math"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/framework"
)

// TestCapacityFromEngineState: with no fixed per-pod limit, admission is
// unbounded until every engine has been seen saturated, then it is what
// each runs at saturation plus one, learned from its last report with
// requests waiting; a removed pod's learned value goes with it.
func TestCapacityFromEngineState(t *testing.T) {
	store := datastore.New()
	store.UpsertServer(&networkingv1alpha1.ModelServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: networkingv1alpha1.ModelServerSpec{
			WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": "a"}},
			WorkloadPort:     networkingv1alpha1.WorkloadPort{Port: 8000},
		},
	})
	for _, name := range []string{"p1", "p2"} {
		store.UpsertPod(&datastore.Pod{Namespace: "ns", Name: name, IP: "10.0.0." + name[1:], Labels: map[string]string{"app": "a"}})
	}
	d := New(Options{Store: store})
	f := &Fairness{}
	eps, _ := store.Endpoints("ns/s", nil)
	if len(eps) != 2 {
		t.Fatalf("%d endpoints", len(eps))
	}
	set := func(i int, running, waiting float64) {
		eps[i].SetMetrics(&framework.Metrics{Scraped: true, Running: running, Waiting: waiting})
	}
	if got := d.capacity("ns/s", f); got != math.MaxInt {
		t.Fatalf("before any scrape: %d", got)
	}
	set(0, 8, 3)
	set(1, 5, 0)
	if got := d.capacity("ns/s", f); got != math.MaxInt {
		t.Fatalf("one pod never saturated: %d, want unbounded", got)
	}
	set(1, 6, 2)
	if got := d.capacity("ns/s", f); got != 9+7 {
		t.Fatalf("both saturated: %d, want 9+7", got)
	}
	// Saturation is remembered while the queue is empty, and follows the
	// engine when it saturates at another level.
	set(0, 8, 0)
	set(1, 4, 1)
	if got := d.capacity("ns/s", f); got != 9+5 {
		t.Fatalf("after new reports: %d, want 9+5", got)
	}
	if got := d.capacity("ns/s", &Fairness{MaxInFlightPerPod: 3}); got != 6 {
		t.Fatalf("fixed per pod: %d", got)
	}
	store.DeletePod("ns", "p2")
	if _, ok := d.saturatedAt.Load(eps[1].Key); ok {
		t.Error("a removed pod's saturation is kept")
	}
}
