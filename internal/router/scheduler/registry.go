package scheduler

import (
	"fmt"
	"sort"

	"github.com/kthena/kthena/internal/router/framework"
)

// Registry maps plugin types to factories. It is a value, not a global, so
// tests and out-of-tree builds can assemble their own.
type Registry struct {
	factories map[string]framework.Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]framework.Factory{}}
}

// Register adds a plugin type; registering a type twice is an error.
func (r *Registry) Register(typ string, f framework.Factory) error {
	if typ == "" || f == nil {
		return fmt.Errorf("register plugin: empty type or nil factory")
	}
	if _, ok := r.factories[typ]; ok {
		return fmt.Errorf("register plugin: type %q already registered", typ)
	}
	r.factories[typ] = f
	return nil
}

// MustRegister is Register that panics; use it only in registration
// functions called from main or tests.
func (r *Registry) MustRegister(typ string, f framework.Factory) {
	if err := r.Register(typ, f); err != nil {
		panic(err)
	}
}

// Types lists registered types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (r *Registry) factory(typ string) (framework.Factory, bool) {
	f, ok := r.factories[typ]
	return f, ok
}
