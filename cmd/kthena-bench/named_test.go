package main

import (
	"slices"
	"testing"
)

func TestNamed(t *testing.T) {
	all := []string{"random", "least-request", "kthena default", "kthena default (in-process tokenizer)"}
	id := func(s string) string { return s }
	if got, err := named(all, "", id); err != nil || !slices.Equal(got, all) {
		t.Fatalf("empty list kept %v, %v", got, err)
	}
	if got, err := named(all, "kthena default, random", id); err != nil || !slices.Equal(got, []string{"random", "kthena default"}) {
		t.Fatalf("kept %v, %v: want whole names only, in the items' order", got, err)
	}
	if got, err := named(all, "random,nothing", id); err == nil {
		t.Fatalf("kept %v for an unknown name, want an error", got)
	}
}
