package workload

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// tracker remembers, per ModelServing, which role replicas were last seen
// running and which pods were announced ready to the plugins, so that
// RoleRunning events and OnPodReady hooks fire on transitions only. It is
// memory only: after a controller restart each running role replica and
// ready pod is announced once more.
type tracker struct {
	mu      sync.Mutex
	running map[types.NamespacedName]map[string]bool
	ready   map[types.NamespacedName]map[types.UID]bool
}

func newTracker() *tracker {
	return &tracker{running: map[types.NamespacedName]map[string]bool{}, ready: map[types.NamespacedName]map[types.UID]bool{}}
}

// runningNow replaces the running set of key and returns the members that
// are new.
func (t *tracker) runningNow(key types.NamespacedName, now map[string]bool) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fresh []string
	old := t.running[key]
	for id := range now {
		if !old[id] {
			fresh = append(fresh, id)
		}
	}
	t.running[key] = now
	return fresh
}

// readyNow replaces the ready-pod set of key and returns the new members.
func (t *tracker) readyNow(key types.NamespacedName, now map[types.UID]bool) []types.UID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fresh []types.UID
	old := t.ready[key]
	for id := range now {
		if !old[id] {
			fresh = append(fresh, id)
		}
	}
	t.ready[key] = now
	return fresh
}

func (t *tracker) forget(key types.NamespacedName) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.running, key)
	delete(t.ready, key)
}
