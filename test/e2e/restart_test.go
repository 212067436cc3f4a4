package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// TestRestartResumes stops the platform (nothing may be left running) and
// starts it again on the same state directory: the objects are still
// there, the pods run again and the model serves. TestMain runs it after
// every other test (runLast in main_test.go); it needs nothing from them.
func TestRestartResumes(t *testing.T) {
	ms := simServing("resume", "resume", 1)
	create(t, ms, modelServer("resume", "resume"), simpleRoute("resume", "resume", "resume"))
	before := waitReady(t, "resume", 1)
	waitServes(t, "resume")

	began := time.Now()
	if err := env.stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("platform stopped in %.1fs with no process left", time.Since(began).Seconds())
	if err := env.start(); err != nil {
		t.Fatal(err)
	}
	clientOnce = sync.Once{} // the kubeconfig is rewritten on start
	got := &workloadv1alpha1.ModelServing{}
	if err := kube(t).Get(ctx(t), client.ObjectKeyFromObject(ms), got); err != nil {
		t.Fatalf("ModelServing after restart: %v", err)
	}
	if got.UID != ms.UID {
		t.Errorf("ModelServing UID %s after restart, want %s (the same object)", got.UID, ms.UID)
	}
	after := waitReady(t, "resume", 1)
	if after[0].UID != before[0].UID {
		t.Errorf("pod %s was replaced; want the same pod to run again", before[0].Name)
	}
	eventually(t, 30*time.Second, "the model serves after the restart", func() error {
		if r := chat(t, "resume", "again", nil); r.status != 200 {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
}
