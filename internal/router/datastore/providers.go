package datastore

import (
	"sync"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

// providers holds ExternalModelProviders and the credential Secrets they
// reference (only Secrets the providers feed in: labelled ones in
// Kubernetes, `kind: Secret` documents in the endpoints file).
type providers struct {
	mu      sync.RWMutex
	byKey   map[string]*networkingv1alpha1.ExternalModelProvider
	secrets map[string]map[string][]byte
}

func (p *providers) init() {
	if p.byKey == nil {
		p.byKey = map[string]*networkingv1alpha1.ExternalModelProvider{}
		p.secrets = map[string]map[string][]byte{}
	}
}

// UpsertProvider adds or replaces an ExternalModelProvider.
func (s *Store) UpsertProvider(p *networkingv1alpha1.ExternalModelProvider) {
	s.ext.mu.Lock()
	s.ext.init()
	s.ext.byKey[key(p.Namespace, p.Name)] = p
	s.ext.mu.Unlock()
}

// DeleteProvider removes an ExternalModelProvider.
func (s *Store) DeleteProvider(ns, name string) {
	s.ext.mu.Lock()
	delete(s.ext.byKey, key(ns, name))
	s.ext.mu.Unlock()
}

// Provider returns an ExternalModelProvider by namespace/name.
func (s *Store) Provider(nsName string) *networkingv1alpha1.ExternalModelProvider {
	s.ext.mu.RLock()
	defer s.ext.mu.RUnlock()
	return s.ext.byKey[nsName]
}

// UpsertSecret stores a credential Secret's data.
func (s *Store) UpsertSecret(ns, name string, data map[string][]byte) {
	s.ext.mu.Lock()
	s.ext.init()
	s.ext.secrets[key(ns, name)] = data
	s.ext.mu.Unlock()
}

// DeleteSecret forgets a credential Secret.
func (s *Store) DeleteSecret(ns, name string) {
	s.ext.mu.Lock()
	delete(s.ext.secrets, key(ns, name))
	s.ext.mu.Unlock()
}

// SecretValue returns one key of a stored Secret.
func (s *Store) SecretValue(ns, name, k string) (string, bool) {
	s.ext.mu.RLock()
	defer s.ext.mu.RUnlock()
	v, ok := s.ext.secrets[key(ns, name)][k]
	return string(v), ok
}
