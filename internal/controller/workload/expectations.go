package workload

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// expectationsTTL bounds how long a reconcile waits for the cache to show
// its own writes before it acts again anyway.
const expectationsTTL = 30 * time.Second

// expectations remembers, per ModelServing, the pods a reconcile created or
// deleted that the informer cache has not shown yet (as the ReplicaSet
// controller does). While any are outstanding the ModelServing is not
// reconciled again, so a stale cache never makes it create or delete twice.
type expectations struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*pending
}

type pending struct {
	creates map[string]struct{}
	deletes map[types.UID]struct{}
	at      time.Time
	// lost are the groups that lost a pod the controller did not delete.
	lost map[string]bool
}

func newExpectations() *expectations {
	return &expectations{m: map[types.NamespacedName]*pending{}}
}

func (e *expectations) get(key types.NamespacedName) *pending {
	p := e.m[key]
	if p == nil {
		p = &pending{creates: map[string]struct{}{}, deletes: map[types.UID]struct{}{}, lost: map[string]bool{}}
		e.m[key] = p
	}
	return p
}

// expect records creations by pod name and deletions by pod UID.
func (e *expectations) expect(key types.NamespacedName, creates []string, deletes []types.UID, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.get(key)
	for _, n := range creates {
		p.creates[n] = struct{}{}
	}
	for _, u := range deletes {
		p.deletes[u] = struct{}{}
	}
	p.at = now
}

func (e *expectations) created(key types.NamespacedName, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.m[key]; p != nil {
		delete(p.creates, name)
	}
}

// deleted observes a deletion and says whether the controller asked for it.
func (e *expectations) deleted(key types.NamespacedName, uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.m[key]; p != nil {
		if _, ok := p.deletes[uid]; ok {
			delete(p.deletes, uid)
			return true
		}
	}
	return false
}

// lose records that group lost a pod nobody in this controller deleted.
func (e *expectations) lose(key types.NamespacedName, group string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.get(key).lost[group] = true
}

// takeLost returns and clears the groups that lost pods.
func (e *expectations) takeLost(key types.NamespacedName) map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.m[key]
	if p == nil || len(p.lost) == 0 {
		return nil
	}
	out := p.lost
	p.lost = map[string]bool{}
	return out
}

// satisfied is true when nothing is outstanding, or it has been outstanding
// longer than the TTL. It returns how long to wait otherwise.
func (e *expectations) satisfied(key types.NamespacedName, now time.Time) (bool, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.m[key]
	if p == nil || len(p.creates) == 0 && len(p.deletes) == 0 {
		return true, 0
	}
	if left := p.at.Add(expectationsTTL).Sub(now); left > 0 {
		return false, left
	}
	p.creates, p.deletes = map[string]struct{}{}, map[types.UID]struct{}{}
	return true, 0
}

func (e *expectations) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
