package platform

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSupervisorRestarts: a child that exits is started again after the
// back-off, and Stop ends it for good.
func TestSupervisorRestarts(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	// Each run appends a line; the first two crash, the third stays up.
	script := `echo run >> ` + runs + `; n=$(wc -l < ` + runs + `); if [ "$n" -lt 3 ]; then exit 3; fi; exec sleep 600`
	p := &Process{Name: "child", Path: "/bin/sh", Args: []string{"-c", script}, LogPath: filepath.Join(dir, "child.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	s := supervise(p, func(f string, a ...any) { mu.Lock(); lines = append(lines, f); mu.Unlock() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(runs)
		if strings.Count(string(data), "run") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarts %d after 30s", s.Restarts())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a fourth run, were the third to exit, would show below
	s.Stop(5 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-p.Done():
	default:
		t.Fatal("child still running after Stop")
	}
	data, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "run"); n != 3 {
		t.Fatalf("child ran %d times, want 3 (two crashes, one restart that stayed up)", n)
	}
	if s.Restarts() != 2 {
		t.Fatalf("restarts %d after Stop, want 2", s.Restarts())
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "restarting in") {
		t.Fatalf("progress lines %q", lines)
	}
}
