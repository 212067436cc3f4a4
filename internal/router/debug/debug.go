// Package debug serves localhost-only introspection: config dumps of what
// the router knows and pprof.
package debug

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/kvindex"
)

// Source is what the dumps read.
type Source interface {
	AllRoutes() []*networkingv1alpha1.ModelRoute
	AllServers() []*networkingv1alpha1.ModelServer
	AllEndpoints() []*datastore.Endpoint
}

type podDump struct {
	Key      string            `json:"key"`
	Address  string            `json:"address"`
	Engine   string            `json:"engine"`
	Labels   map[string]string `json:"labels,omitempty"`
	Servers  []string          `json:"modelServers"`
	InFlight int64             `json:"inFlight"`
	Failed   bool              `json:"failed"`
	Metrics  any               `json:"metrics"`
	Models   []string          `json:"models"`
}

// Handler returns the debug mux. config returns the active router
// configuration text.
func Handler(src Source, config func() string) http.Handler {
	mux := http.NewServeMux()
	js := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	mux.HandleFunc("GET /debug/config_dump/modelroutes", func(w http.ResponseWriter, _ *http.Request) { js(w, src.AllRoutes()) })
	mux.HandleFunc("GET /debug/config_dump/modelservers", func(w http.ResponseWriter, _ *http.Request) { js(w, src.AllServers()) })
	mux.HandleFunc("GET /debug/config_dump/pods", func(w http.ResponseWriter, _ *http.Request) {
		var out []podDump
		for _, e := range src.AllEndpoints() {
			m := e.Metrics()
			d := podDump{Key: e.Key, Address: e.Address, Engine: e.Engine, Labels: e.Labels, Servers: e.Servers,
				InFlight: e.InFlight(), Failed: e.Failed(),
				Metrics: map[string]any{"waiting": m.Waiting, "running": m.Running, "kvCacheUsage": m.KVCacheUsage, "ttft": m.TTFT, "tpot": m.TPOT, "scraped": m.Scraped}}
			for k := range m.Models {
				d.Models = append(d.Models, k)
			}
			out = append(out, d)
		}
		js(w, out)
	})
	mux.HandleFunc("GET /debug/config_dump/router", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write([]byte(config()))
	})
	kvIndex(mux, js)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// kvIndex serves what the live KV-event indexes (one per kvcache-aware
// scorer instance) know: GET /debug/kvindex their size per pod, and
// POST /debug/kvindex/probe (a kvindex.Probe: a prompt or chat messages,
// optionally a LoRA name and pods) the blocks of that prompt each pod holds.
func kvIndex(mux *http.ServeMux, js func(http.ResponseWriter, any)) {
	mux.HandleFunc("GET /debug/kvindex", func(w http.ResponseWriter, _ *http.Request) {
		out := []kvindex.Size{}
		for _, in := range kvindex.Inspectors() {
			out = append(out, in.Size())
		}
		js(w, out)
	})
	mux.HandleFunc("POST /debug/kvindex/probe", func(w http.ResponseWriter, r *http.Request) {
		var p kvindex.Probe
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 32<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			http.Error(w, "bad probe: "+err.Error(), http.StatusBadRequest)
			return
		}
		out := []kvindex.ProbeResult{}
		for _, in := range kvindex.Inspectors() {
			out = append(out, in.Probe(p))
		}
		js(w, out)
	})
}
