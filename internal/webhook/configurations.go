package webhook

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/kthena/kthena/config"
)

// Group selects the webhooks of one API group, because each group's webhooks
// are served by a different binary (workload: controller manager;
// networking: router).
type Group string

const (
	WorkloadGroup   Group = "workload.serving.volcano.sh"
	NetworkingGroup Group = "networking.serving.volcano.sh"
)

// Configurations returns the webhook configurations of one group, named
// "kthena-<group prefix>-validating" and "-mutating", with every client
// config built by clientConfig from the webhook's path.
func Configurations(group Group, clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) (*admissionregistrationv1.ValidatingWebhookConfiguration, *admissionregistrationv1.MutatingWebhookConfiguration, error) {
	data, err := config.Webhooks.ReadFile("webhook/manifests.yaml")
	if err != nil {
		return nil, nil, err
	}
	prefix := "kthena-" + strings.Split(string(group), ".")[0]
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	validating.Name = prefix + "-validating"
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	mutating.Name = prefix + "-mutating"

	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		var kind struct{ Kind string }
		if err := yaml.Unmarshal(doc, &kind); err != nil {
			return nil, nil, err
		}
		switch kind.Kind {
		case "ValidatingWebhookConfiguration":
			var cfg admissionregistrationv1.ValidatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &cfg); err != nil {
				return nil, nil, err
			}
			for _, w := range cfg.Webhooks {
				if inGroup(w.Rules, group) {
					w.ClientConfig = clientConfig(servicePath(w.ClientConfig))
					validating.Webhooks = append(validating.Webhooks, w)
				}
			}
		case "MutatingWebhookConfiguration":
			var cfg admissionregistrationv1.MutatingWebhookConfiguration
			if err := yaml.UnmarshalStrict(doc, &cfg); err != nil {
				return nil, nil, err
			}
			for _, w := range cfg.Webhooks {
				if inGroup(w.Rules, group) {
					w.ClientConfig = clientConfig(servicePath(w.ClientConfig))
					mutating.Webhooks = append(mutating.Webhooks, w)
				}
			}
		case "":
		default:
			return nil, nil, fmt.Errorf("unexpected %s in webhook manifests", kind.Kind)
		}
	}
	return validating, mutating, nil
}

func inGroup(rules []admissionregistrationv1.RuleWithOperations, group Group) bool {
	for _, r := range rules {
		for _, g := range r.APIGroups {
			if g == string(group) {
				return true
			}
		}
	}
	return false
}

func servicePath(c admissionregistrationv1.WebhookClientConfig) string {
	if c.Service == nil || c.Service.Path == nil {
		return "/"
	}
	return *c.Service.Path
}

// URLClientConfig points webhooks at a server reached by URL (no Service),
// as on the local platform where the API server calls 127.0.0.1.
func URLClientConfig(base string, caBundle []byte) func(path string) admissionregistrationv1.WebhookClientConfig {
	return func(path string) admissionregistrationv1.WebhookClientConfig {
		u := strings.TrimSuffix(base, "/") + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: caBundle}
	}
}

// ServiceClientConfig points webhooks at a Service in the cluster.
func ServiceClientConfig(namespace, name string, port int32, caBundle []byte) func(path string) admissionregistrationv1.WebhookClientConfig {
	return func(path string) admissionregistrationv1.WebhookClientConfig {
		p := path
		return admissionregistrationv1.WebhookClientConfig{
			Service:  &admissionregistrationv1.ServiceReference{Namespace: namespace, Name: name, Path: &p, Port: &port},
			CABundle: caBundle,
		}
	}
}
