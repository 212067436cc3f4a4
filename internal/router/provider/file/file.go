// Package file is the standalone provider: one YAML file (several
// documents) holding ModelServer and ModelRoute objects exactly as in
// Kubernetes, plus `kind: Endpoints` documents listing engine addresses
// with labels. The file is watched and reloaded live; an invalid edit is
// logged and the last good content stays in effect.
package file

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/datastore"
	"github.com/kthena/kthena/internal/router/provider"
)

// Endpoints is the file's list of engines.
type Endpoints struct {
	Kind       string     `json:"kind"`
	APIVersion string     `json:"apiVersion,omitempty"`
	Endpoints  []Endpoint `json:"endpoints"`
}

// Endpoint is one engine.
type Endpoint struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Address is host or host:port; without a port the ModelServer's
	// workloadPort is used.
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Snapshot is a parsed file.
type Snapshot struct {
	Servers []*networkingv1alpha1.ModelServer
	Routes  []*networkingv1alpha1.ModelRoute
	Pods    []*datastore.Pod
	// Providers are ExternalModelProviders; Secrets hold their credentials.
	Providers []*networkingv1alpha1.ExternalModelProvider
	Secrets   []*corev1.Secret
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Parse decodes a file strictly.
func Parse(data []byte) (*Snapshot, error) {
	s := &Snapshot{}
	seen := map[string]bool{}
	for i, doc := range docSep.Split(string(data), -1) {
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		dup := func(kind, ns, name string) error {
			k := kind + "/" + ns + "/" + name
			if name == "" {
				return fmt.Errorf("document %d: %s without metadata.name", i+1, kind)
			}
			if seen[k] {
				return fmt.Errorf("document %d: duplicate %s %s/%s", i+1, kind, ns, name)
			}
			seen[k] = true
			return nil
		}
		switch head.Kind {
		case "":
			continue // empty document
		case "ModelServer":
			var ms networkingv1alpha1.ModelServer
			if err := yaml.UnmarshalStrict([]byte(doc), &ms); err != nil {
				return nil, fmt.Errorf("document %d (ModelServer): %w", i+1, err)
			}
			if ms.Namespace == "" {
				ms.Namespace = "default"
			}
			if err := dup("ModelServer", ms.Namespace, ms.Name); err != nil {
				return nil, err
			}
			s.Servers = append(s.Servers, &ms)
		case "ModelRoute":
			var mr networkingv1alpha1.ModelRoute
			if err := yaml.UnmarshalStrict([]byte(doc), &mr); err != nil {
				return nil, fmt.Errorf("document %d (ModelRoute): %w", i+1, err)
			}
			if mr.Namespace == "" {
				mr.Namespace = "default"
			}
			if err := dup("ModelRoute", mr.Namespace, mr.Name); err != nil {
				return nil, err
			}
			if mr.Spec.ModelName == "" && len(mr.Spec.LoraAdapters) == 0 {
				return nil, fmt.Errorf("document %d: ModelRoute %s needs modelName or loraAdapters", i+1, mr.Name)
			}
			s.Routes = append(s.Routes, &mr)
		case "ExternalModelProvider":
			var p networkingv1alpha1.ExternalModelProvider
			if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
				return nil, fmt.Errorf("document %d (ExternalModelProvider): %w", i+1, err)
			}
			if p.Namespace == "" {
				p.Namespace = "default"
			}
			if err := dup("ExternalModelProvider", p.Namespace, p.Name); err != nil {
				return nil, err
			}
			if p.Spec.BaseURL == "" {
				return nil, fmt.Errorf("document %d: ExternalModelProvider %s needs spec.baseURL", i+1, p.Name)
			}
			s.Providers = append(s.Providers, &p)
		case "Secret":
			var sec corev1.Secret
			if err := yaml.UnmarshalStrict([]byte(doc), &sec); err != nil {
				return nil, fmt.Errorf("document %d (Secret): %w", i+1, err)
			}
			if sec.Namespace == "" {
				sec.Namespace = "default"
			}
			if err := dup("Secret", sec.Namespace, sec.Name); err != nil {
				return nil, err
			}
			s.Secrets = append(s.Secrets, &sec)
		case "Endpoints":
			var eps Endpoints
			if err := yaml.UnmarshalStrict([]byte(doc), &eps); err != nil {
				return nil, fmt.Errorf("document %d (Endpoints): %w", i+1, err)
			}
			for _, e := range eps.Endpoints {
				ns := e.Namespace
				if ns == "" {
					ns = "default"
				}
				if err := dup("Endpoint", ns, e.Name); err != nil {
					return nil, err
				}
				host, port, err := splitAddr(e.Address)
				if err != nil {
					return nil, fmt.Errorf("document %d: endpoint %s: %w", i+1, e.Name, err)
				}
				s.Pods = append(s.Pods, &datastore.Pod{Namespace: ns, Name: e.Name, IP: host, Port: port, Labels: e.Labels})
			}
		default:
			return nil, fmt.Errorf("document %d: unsupported kind %q (want ModelServer, ModelRoute, ExternalModelProvider, Secret or Endpoints)", i+1, head.Kind)
		}
	}
	return s, nil
}

func splitAddr(a string) (string, int32, error) {
	if a == "" {
		return "", 0, fmt.Errorf("empty address")
	}
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		return a, 0, nil // host only
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("bad port in %q", a)
	}
	return host, int32(n), nil
}

// secretData merges data and stringData as the API server does.
func secretData(s *corev1.Secret) map[string][]byte {
	out := make(map[string][]byte, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = v
	}
	for k, v := range s.StringData {
		out[k] = []byte(v)
	}
	return out
}

// Provider keeps a store in sync with a file.
type Provider struct {
	path  string
	store provider.Store
	log   logr.Logger

	mu   sync.Mutex
	prev *Snapshot
	// Reloaded, when set, is called after every load attempt.
	Reloaded func(err error)
}

// New returns a provider for path.
func New(path string, store provider.Store, log logr.Logger) *Provider {
	return &Provider{path: path, store: store, log: log}
}

// Load reads the file once and applies it.
func (p *Provider) Load() error {
	data, err := os.ReadFile(p.path)
	if err != nil {
		return fmt.Errorf("read %s: %w", p.path, err)
	}
	snap, err := Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", p.path, err)
	}
	p.apply(snap)
	return nil
}

func (p *Provider) apply(s *Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ms := range s.Servers {
		p.store.UpsertServer(ms)
	}
	for _, r := range s.Routes {
		p.store.UpsertRoute(r)
	}
	for _, pod := range s.Pods {
		p.store.UpsertPod(pod)
	}
	for _, sec := range s.Secrets {
		p.store.UpsertSecret(sec.Namespace, sec.Name, secretData(sec))
	}
	for _, ep := range s.Providers {
		p.store.UpsertProvider(ep)
	}
	if old := p.prev; old != nil {
		keep := map[string]bool{}
		for _, ms := range s.Servers {
			keep["s/"+ms.Namespace+"/"+ms.Name] = true
		}
		for _, r := range s.Routes {
			keep["r/"+r.Namespace+"/"+r.Name] = true
		}
		for _, pod := range s.Pods {
			keep["p/"+pod.Namespace+"/"+pod.Name] = true
		}
		for _, e := range s.Providers {
			keep["x/"+e.Namespace+"/"+e.Name] = true
		}
		for _, sec := range s.Secrets {
			keep["k/"+sec.Namespace+"/"+sec.Name] = true
		}
		for _, e := range old.Providers {
			if !keep["x/"+e.Namespace+"/"+e.Name] {
				p.store.DeleteProvider(e.Namespace, e.Name)
			}
		}
		for _, sec := range old.Secrets {
			if !keep["k/"+sec.Namespace+"/"+sec.Name] {
				p.store.DeleteSecret(sec.Namespace, sec.Name)
			}
		}
		for _, r := range old.Routes {
			if !keep["r/"+r.Namespace+"/"+r.Name] {
				p.store.DeleteRoute(r.Namespace, r.Name)
			}
		}
		for _, pod := range old.Pods {
			if !keep["p/"+pod.Namespace+"/"+pod.Name] {
				p.store.DeletePod(pod.Namespace, pod.Name)
			}
		}
		for _, ms := range old.Servers {
			if !keep["s/"+ms.Namespace+"/"+ms.Name] {
				p.store.DeleteServer(ms.Namespace, ms.Name)
			}
		}
	}
	p.prev = s
}

// Run loads the file and then reloads it on every change until ctx ends.
// It watches the directory, so editors' rename-over and ConfigMap symlink
// swaps are seen.
func (p *Provider) Run(ctx context.Context) error {
	if err := p.Load(); err != nil {
		return err
	}
	return Watch(ctx, p.path, p.log, func() {
		err := p.Load()
		if err != nil {
			p.log.Error(err, "endpoint file reload failed; keeping the previous content")
		} else {
			p.log.Info("endpoint file reloaded", "path", p.path)
		}
		if p.Reloaded != nil {
			p.Reloaded(err)
		}
	})
}

// Watch calls changed (debounced) whenever path changes, until ctx ends.
func Watch(ctx context.Context, path string, log logr.Logger, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	base := filepath.Base(path)
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			// ConfigMaps swap a "..data" symlink; react to it as well.
			if filepath.Base(ev.Name) != base && filepath.Base(ev.Name) != "..data" {
				continue
			}
			if timer == nil {
				timer = time.AfterFunc(50*time.Millisecond, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(50 * time.Millisecond)
			}
		case <-fire:
			changed()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Error(err, "file watch error", "path", path)
		}
	}
}
