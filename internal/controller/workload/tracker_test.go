package workload

import (
	"reflect"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestTrackerTransitions(t *testing.T) {
	tr := newTracker()
	key := types.NamespacedName{Namespace: "ns", Name: "m"}
	fresh := tr.runningNow(key, map[string]bool{"g/a": true, "g/b": true})
	sort.Strings(fresh)
	if !reflect.DeepEqual(fresh, []string{"g/a", "g/b"}) {
		t.Fatalf("first = %v", fresh)
	}
	if fresh := tr.runningNow(key, map[string]bool{"g/a": true, "g/b": true}); len(fresh) != 0 {
		t.Fatalf("no transition, got %v", fresh)
	}
	// b stops running, then runs again: announced again.
	tr.runningNow(key, map[string]bool{"g/a": true})
	if fresh := tr.runningNow(key, map[string]bool{"g/a": true, "g/b": true}); !reflect.DeepEqual(fresh, []string{"g/b"}) {
		t.Fatalf("again = %v", fresh)
	}
	if got := tr.readyNow(key, map[types.UID]bool{"u": true}); len(got) != 1 {
		t.Fatalf("ready = %v", got)
	}
	if got := tr.readyNow(key, map[types.UID]bool{"u": true}); len(got) != 0 {
		t.Fatalf("ready twice = %v", got)
	}
	tr.forget(key)
	if got := tr.readyNow(key, map[types.UID]bool{"u": true}); len(got) != 1 {
		t.Fatalf("after forget = %v", got)
	}
}
