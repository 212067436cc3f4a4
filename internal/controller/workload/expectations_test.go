package workload

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestExpectations(t *testing.T) {
	e := newExpectations()
	key := types.NamespacedName{Namespace: "ns", Name: "ms"}
	now := time.Unix(1000, 0)
	if ok, _ := e.satisfied(key, now); !ok {
		t.Fatal("empty expectations must be satisfied")
	}
	e.expect(key, []string{"a", "b"}, []types.UID{"u1"}, now)
	if ok, wait := e.satisfied(key, now); ok || wait <= 0 {
		t.Fatalf("outstanding expectations satisfied: %v %v", ok, wait)
	}
	e.created(key, "a")
	e.created(key, "b")
	if ok, _ := e.satisfied(key, now); ok {
		t.Fatal("deletion still outstanding")
	}
	if !e.deleted(key, "u1") {
		t.Fatal("u1 was expected")
	}
	if e.deleted(key, "u2") {
		t.Fatal("u2 was not expected")
	}
	e.lose(key, "g")
	if lost := e.takeLost(key); !lost["g"] || e.takeLost(key) != nil {
		t.Fatalf("lost = %v", lost)
	}
	if ok, _ := e.satisfied(key, now); !ok {
		t.Fatal("all observed, must be satisfied")
	}
	e.expect(key, []string{"c"}, nil, now)
	if ok, _ := e.satisfied(key, now.Add(expectationsTTL+time.Second)); !ok {
		t.Fatal("expired expectations must be satisfied")
	}
}
