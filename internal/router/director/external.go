package director

import (
	"crypto/tls"
	"net/http"
	"strings"
	"time"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/openai"
)

// externalHeaders are the client headers forwarded to a hosted provider;
// everything else (the client's own Authorization included) stays here.
var externalHeaders = []string{"Accept", "User-Agent", RequestIDHeader, "Anthropic-Version", "Anthropic-Beta", "Openai-Beta"}

// externalTransport returns the provider transport, verifying
// certificates or not.
func (d *Director) externalTransport(insecure bool) http.RoundTripper {
	if insecure {
		return d.insecureRT
	}
	return d.secureRT
}

func newExternalTransport(insecure bool) *http.Transport {
	t := NewTransport()
	t.ForceAttemptHTTP2 = true
	t.MaxIdleConnsPerHost = 256
	if insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the provider's spec asks for it
	}
	return t
}

// external proxies a request to an ExternalModelProvider: the path after
// /v1 is appended to spec.baseURL (so baseURL is the API root such as
// https://api.openai.com/v1), the model is rewritten to spec.model when set,
// only allow-listed client headers pass, and the credential from the
// referenced Secret goes in Authorization (Bearer) or x-api-key. There is
// no failover: one attempt.
func (d *Director) external(c *call, p *networkingv1alpha1.ExternalModelProvider) error {
	spec := &p.Spec
	cred := ""
	scheme := networkingv1alpha1.AuthSchemeBearer
	if spec.ProviderType == networkingv1alpha1.Anthropic {
		scheme = networkingv1alpha1.AuthSchemeAPIKey
	}
	if a := spec.Auth; a != nil {
		if a.Scheme != "" {
			scheme = a.Scheme
		}
		v, ok := d.o.Store.SecretValue(p.Namespace, a.SecretRef.Name, a.SecretRef.Key)
		if !ok {
			return openai.Errorf(http.StatusServiceUnavailable, "provider_credentials", "ExternalModelProvider %s/%s: credential %s/%s key %q not found (the Secret needs the label %s=%s)",
				p.Namespace, p.Name, p.Namespace, a.SecretRef.Name, a.SecretRef.Key, networkingv1alpha1.ExternalModelProviderCredentialSecretLabel, networkingv1alpha1.ExternalModelProviderCredentialSecretLabelEnabled)
		}
		cred = strings.TrimSpace(v)
	}
	upstreamModel := c.parsed.Model
	if spec.Model != nil && *spec.Model != "" {
		upstreamModel = *spec.Model
	}
	c.entry.UpstreamModel = upstreamModel
	path := strings.TrimPrefix(c.r.URL.Path, "/v1")
	url := strings.TrimSuffix(spec.BaseURL, "/") + path
	if q := c.r.URL.RawQuery; q != "" {
		url += "?" + q
	}
	header := func(client, out http.Header) {
		for _, k := range externalHeaders {
			if v := client.Values(k); len(v) > 0 {
				out[k] = v
			}
		}
		for k, v := range spec.Headers {
			out.Set(k, v)
		}
		switch {
		case cred == "":
		case scheme == networkingv1alpha1.AuthSchemeAPIKey:
			out.Set("X-Api-Key", cred)
		default:
			out.Set("Authorization", "Bearer "+cred)
		}
	}
	segs, n := c.parsed.Splice(c.body, openai.Rewrite{Model: upstreamModel, ForceUsage: spec.ProviderType != networkingv1alpha1.Anthropic})
	injected := c.parsed.Stream && !c.parsed.IncludeUsage && spec.ProviderType != networkingv1alpha1.Anthropic
	c.upStart = time.Now()
	c.entry.UpstreamAttempts = 1
	ae := d.send(c.r.Context(), c, target{url: url, rt: d.externalTransport(spec.InsecureSkipVerify), header: header}, segs, n, 0, injected)
	if ae == nil {
		return nil
	}
	status := http.StatusBadGateway
	if ae.timeout {
		status = http.StatusGatewayTimeout
	} else if ae.status >= 400 && ae.status < 500 && ae.status != http.StatusTooManyRequests {
		status = ae.status
	}
	return &openai.Error{Status: status, Type: "upstream_error", Origin: "upstream",
		Message: "ExternalModelProvider " + p.Namespace + "/" + p.Name + ": " + ae.msg}
}
