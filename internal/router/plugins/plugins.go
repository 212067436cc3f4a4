// Package plugins registers the in-tree scheduler plugins.
package plugins

import (
	"github.com/kthena/kthena/internal/router/kvindex"
	"github.com/kthena/kthena/internal/router/plugins/filter/loraaffinity"
	"github.com/kthena/kthena/internal/router/plugins/scorer/gpuusage"
	"github.com/kthena/kthena/internal/router/plugins/scorer/kvcacheaware"
	"github.com/kthena/kthena/internal/router/plugins/scorer/leastlatency"
	"github.com/kthena/kthena/internal/router/plugins/scorer/leastrequest"
	"github.com/kthena/kthena/internal/router/plugins/scorer/prefixcache"
	"github.com/kthena/kthena/internal/router/plugins/scorer/random"
	"github.com/kthena/kthena/internal/router/plugins/scorer/roundrobin"
	"github.com/kthena/kthena/internal/router/scheduler"
)

// RegisterInTree adds every in-tree plugin type to r.
func RegisterInTree(r *scheduler.Registry) {
	r.MustRegister(leastrequest.Type, leastrequest.Factory)
	r.MustRegister(gpuusage.Type, gpuusage.Factory)
	r.MustRegister(leastlatency.Type, leastlatency.Factory)
	r.MustRegister(prefixcache.Type, prefixcache.Factory)
	r.MustRegister(kvcacheaware.Type, kvcacheaware.FactoryWith(kvindex.Open))
	r.MustRegister(loraaffinity.Type, loraaffinity.Factory)
	r.MustRegister(random.Type, random.Factory)
	r.MustRegister(roundrobin.Type, roundrobin.Factory)
}

// NewRegistry returns a registry with every in-tree plugin.
func NewRegistry() *scheduler.Registry {
	r := scheduler.NewRegistry()
	RegisterInTree(r)
	return r
}
