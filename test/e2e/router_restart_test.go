package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/testing/loadgen"
)

// TestRouterRestartRefusesNobody: `kthena up` holds the router's socket
// across restarts, so requests sent while the router drains, exits and
// comes back wait for the next router instead of being refused.
func TestRouterRestartRefusesNobody(t *testing.T) {
	create(t, simServing("handover", "handover", 1), modelServer("handover", "handover"), simpleRoute("handover", "handover", "handover"))
	waitReady(t, "handover", 1)
	waitServes(t, "handover")

	binary := filepath.Join(env.binDir, "kthena-router")
	old := childPID(binary)
	if old == 0 {
		t.Fatal("no router process")
	}
	load := loadgen.Start(t, 4, func() error {
		if r := chatWithin(t, time.Minute, "handover", "while the router restarts", nil); r.status != http.StatusOK {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "router restarted and serving", func() error {
		if pid := childPID(binary); pid == 0 || pid == old {
			return fmt.Errorf("router pid %d (stopped %d)", pid, old)
		}
		res, err := http.Get(env.routerURL + "/readyz")
		if err != nil {
			return err
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %d", res.StatusCode)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	res := load.StopNoneFailed(t, "across the router restart")
	t.Logf("%d requests across the restart, none failed", res.Sent)
}
