package main

import (
	"slices"
	"testing"
)

func TestNamed(t *testing.T) {
	all := []string{"random", "least-request", "kthena default", "kthena default + kvcache-aware"}
	id := func(s string) string { return s }
	if got := named(all, "", id); !slices.Equal(got, all) {
		t.Fatalf("empty list kept %v", got)
	}
	if got := named(all, "kthena default,random", id); !slices.Equal(got, []string{"random", "kthena default"}) {
		t.Fatalf("kept %v: want whole names only, in the items' order", got)
	}
	if got := named(all, "nothing", id); len(got) != 0 {
		t.Fatalf("kept %v for an unknown name", got)
	}
}
