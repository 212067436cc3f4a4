package main

import "testing"

func TestRelaxHostAliasesOnly(t *testing.T) {
	in := `            hostAliases:
              items:
                properties:
                  ip:
                    type: string
                required:
                - ip
                type: object
              type: array
              x-kubernetes-list-map-keys:
              - ip
              x-kubernetes-list-type: map
            env:
              type: array
              x-kubernetes-list-map-keys:
              - name
              x-kubernetes-list-type: map
`
	want := `            hostAliases:
              items:
                properties:
                  ip:
                    type: string
                required:
                - ip
                type: object
              type: array
              x-kubernetes-list-type: atomic
            env:
              type: array
              x-kubernetes-list-map-keys:
              - name
              x-kubernetes-list-type: map
`
	got, changed := relax(in)
	if !changed || got != want {
		t.Fatalf("changed=%v, got:\n%s", changed, got)
	}
	if again, changed := relax(got); changed || again != got {
		t.Fatal("not idempotent")
	}
}
