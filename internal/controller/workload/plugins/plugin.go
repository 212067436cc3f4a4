// Package plugins is the ModelServing pod-customisation framework: plugins
// named in spec.plugins run, in the order listed, on every pod the
// controller builds (OnPodCreate) and once when a pod first becomes ready
// (OnPodReady).
package plugins

import (
	"context"
	"fmt"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"

	workloadv1alpha1 "github.com/kthena/kthena/api/workload/v1alpha1"
)

// HookRequest is what a plugin sees of the pod being built or made ready.
type HookRequest struct {
	ModelServing *workloadv1alpha1.ModelServing
	// ServingGroup is the group name, "<ms>-<i>"; GroupIndex is i.
	ServingGroup string
	GroupIndex   int
	RoleName     string
	// RoleID is "<role>-<j>".
	RoleID string
	// IsEntry is true for the entry pod; WorkerIndex is 0 for it and 1..N for workers.
	IsEntry     bool
	WorkerIndex int
	// Pod may be changed by OnPodCreate; OnPodReady must not change it.
	Pod *corev1.Pod
}

// Plugin customises the pods of a ModelServing.
type Plugin interface {
	Name() string
	// OnPodCreate changes the pod before it is created. An error aborts the creation.
	OnPodCreate(ctx context.Context, req *HookRequest) error
	// OnPodReady is told once when a pod first becomes ready.
	OnPodReady(ctx context.Context, req *HookRequest) error
}

// Factory builds a plugin from its configuration (raw JSON, nil if unset).
// It must reject unknown fields and bad values.
type Factory func(config []byte) (Plugin, error)

// Registry maps plugin names to factories. It is safe for concurrent reads
// once built.
type Registry struct {
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: map[string]Factory{}} }

// NewBuiltInRegistry returns a registry with the built-in plugins.
func NewBuiltInRegistry() *Registry {
	r := NewRegistry()
	r.MustRegister(DemoPodTweaksName, NewDemoPodTweaks)
	r.MustRegister(LWSStandardLabelsName, NewLWSStandardLabels)
	return r
}

// Register adds a factory; a duplicate name is an error.
func (r *Registry) Register(name string, f Factory) error {
	if _, ok := r.factories[name]; ok {
		return fmt.Errorf("plugin %q registered twice", name)
	}
	r.factories[name] = f
	return nil
}

// MustRegister is Register for static registration at start-up.
func (r *Registry) MustRegister(name string, f Factory) {
	if err := r.Register(name, f); err != nil {
		panic(err)
	}
}

// Names lists the registered plugins, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.factories))
	for n := range r.factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type entry struct {
	plugin Plugin
	scope  *workloadv1alpha1.PluginScope
}

// Chain is the ordered plugins of one ModelServing.
type Chain struct {
	entries []entry
}

// Chain builds the chain for specs. An unknown name, a non built-in type or
// a bad config is an error.
func (r *Registry) Chain(specs []workloadv1alpha1.PluginSpec) (*Chain, error) {
	c := &Chain{}
	for i := range specs {
		s := &specs[i]
		if s.Type != "" && s.Type != workloadv1alpha1.PluginTypeBuiltIn {
			return nil, fmt.Errorf("plugin %q: unsupported type %q", s.Name, s.Type)
		}
		f, ok := r.factories[s.Name]
		if !ok {
			return nil, fmt.Errorf("plugin %q is not registered (known: %v)", s.Name, r.Names())
		}
		var raw []byte
		if s.Config != nil {
			raw = s.Config.Raw
		}
		p, err := f(raw)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w", s.Name, err)
		}
		c.entries = append(c.entries, entry{plugin: p, scope: s.Scope})
	}
	return c, nil
}

// Len is the number of plugins in the chain.
func (c *Chain) Len() int { return len(c.entries) }

func inScope(s *workloadv1alpha1.PluginScope, req *HookRequest) bool {
	if s == nil {
		return true
	}
	if len(s.Roles) > 0 && !slices.Contains(s.Roles, req.RoleName) {
		return false
	}
	switch s.Target {
	case workloadv1alpha1.PluginTargetEntry:
		return req.IsEntry
	case workloadv1alpha1.PluginTargetWorker:
		return !req.IsEntry
	}
	return true
}

// OnPodCreate runs the plugins in order; the first error stops the chain.
func (c *Chain) OnPodCreate(ctx context.Context, req *HookRequest) error {
	for _, e := range c.entries {
		if !inScope(e.scope, req) {
			continue
		}
		if err := e.plugin.OnPodCreate(ctx, req); err != nil {
			return fmt.Errorf("plugin %s OnPodCreate: %w", e.plugin.Name(), err)
		}
	}
	return nil
}

// OnPodReady runs the plugins in order; the first error stops the chain.
func (c *Chain) OnPodReady(ctx context.Context, req *HookRequest) error {
	for _, e := range c.entries {
		if !inScope(e.scope, req) {
			continue
		}
		if err := e.plugin.OnPodReady(ctx, req); err != nil {
			return fmt.Errorf("plugin %s OnPodReady: %w", e.plugin.Name(), err)
		}
	}
	return nil
}
