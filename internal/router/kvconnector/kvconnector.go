// Package kvconnector holds the wire protocols by which the router hands a
// request from a prefill pod to a decode pod: what each phase's body
// carries, and what the decode request takes from the prefill response.
// The director runs the exchange; this package only shapes the bodies.
package kvconnector

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tidwall/gjson"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
	"github.com/kthena/kthena/internal/router/openai"
)

// Connector is one hand-off protocol.
type Connector interface {
	// Name is the connector's name in errors, logs and the decision header.
	Name() string
	// Concurrent is true when prefill and decode are sent at once and meet
	// at the engines (SGLang's bootstrap rooms); otherwise decode is sent
	// after prefill answered.
	Concurrent() bool
	// Prefill is the rewrite of the prefill request.
	Prefill(p Pair) openai.Rewrite
	// Decode is the rewrite of the decode request; prefillResponse is the
	// prefill pod's response body (nil for concurrent connectors).
	Decode(p Pair, prefillResponse []byte) (openai.Rewrite, error)
}

// Pair is what the bodies of one prefill/decode exchange may refer to.
type Pair struct {
	// PrefillHost is the prefill pod's IP or host name.
	PrefillHost string
	// Room identifies the exchange at the engines (SGLang bootstrap room).
	Room int64
	// BootstrapPort is the prefill pod's bootstrap port; 0 leaves it to
	// the engines' default (8998).
	BootstrapPort int
}

// BootstrapPortLabel on a prefill pod gives its SGLang bootstrap port when
// it is not the default.
const BootstrapPortLabel = "kthena.io/bootstrap-port"

// PairFor is the Pair of a prefill pod at address host:port with labels.
func PairFor(host string, podLabels map[string]string) Pair {
	p := Pair{PrefillHost: host}
	if v, ok := podLabels[BootstrapPortLabel]; ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65536 {
			p.BootstrapPort = n
		}
	}
	return p
}

// For returns the connector of a ModelServer: SGLang engines speak only the
// bootstrap protocol (whatever kvConnector names: its transfer backends are
// the engines' business); vLLM engines use spec.kvConnector.type, http when
// unset.
func For(ms *networkingv1alpha1.ModelServer) Connector {
	if ms.Spec.InferenceEngine == networkingv1alpha1.SGLang {
		return bootstrap{}
	}
	t := networkingv1alpha1.ConnectorTypeHTTP
	if ms.Spec.KVConnector != nil && ms.Spec.KVConnector.Type != "" {
		t = ms.Spec.KVConnector.Type
	}
	switch t {
	case networkingv1alpha1.ConnectorTypeNIXL, networkingv1alpha1.ConnectorTypeMooncake:
		return transferParams{name: string(t)}
	default:
		return sequential{name: string(t)}
	}
}

// prefillOnly asks for one token without streaming: the prefill pod only
// has to compute (and keep) the prompt's KV.
func prefillOnly(set ...openai.Member) openai.Rewrite {
	return openai.Rewrite{
		Remove: []string{"stream", "stream_options"},
		Set: append([]openai.Member{
			{Name: "max_tokens", Value: []byte("1")},
			{Name: "max_completion_tokens", Value: []byte("1"), IfPresent: true},
		}, set...),
	}
}

// sequential is http and lmcache: the KV moves outside the request
// (LMCache's shared store, or nowhere and the decode pod recomputes), so the
// decode request is the client's.
type sequential struct{ name string }

func (c sequential) Name() string                              { return c.name }
func (sequential) Concurrent() bool                            { return false }
func (sequential) Prefill(Pair) openai.Rewrite                 { return prefillOnly() }
func (sequential) Decode(Pair, []byte) (openai.Rewrite, error) { return openai.Rewrite{}, nil }

// transferParams is vLLM's kv_transfer_params handshake (NixlConnector,
// Mooncake): the prefill request asks to keep the KV for a remote decode,
// and the decode request carries what the prefill response says about
// where that KV is.
type transferParams struct{ name string }

var remoteDecode = []byte(`{"do_remote_decode":true,"do_remote_prefill":false}`)

// ErrNoTransferParams is returned when a prefill response lacks
// kv_transfer_params (the engine has no KV connector configured).
var ErrNoTransferParams = errors.New("the prefill response has no kv_transfer_params object (is the engine started with a KV connector?)")

func (c transferParams) Name() string   { return c.name }
func (transferParams) Concurrent() bool { return false }
func (transferParams) Prefill(Pair) openai.Rewrite {
	return prefillOnly(openai.Member{Name: "kv_transfer_params", Value: remoteDecode})
}

func (transferParams) Decode(_ Pair, resp []byte) (openai.Rewrite, error) {
	v := gjson.GetBytes(resp, "kv_transfer_params")
	if !v.IsObject() {
		return openai.Rewrite{}, ErrNoTransferParams
	}
	return openai.Rewrite{Set: []openai.Member{{Name: "kv_transfer_params", Value: []byte(v.Raw)}}}, nil
}

// bootstrap is SGLang's protocol: both requests name the prefill pod and a
// shared room; the decode engine fetches the KV from the prefill engine's
// bootstrap server. The engines' default bootstrap port is used.
type bootstrap struct{}

func (bootstrap) Name() string     { return "sglang" }
func (bootstrap) Concurrent() bool { return true }

func (bootstrap) members(p Pair) []openai.Member {
	ms := []openai.Member{
		{Name: "bootstrap_host", Value: strconv.AppendQuote(nil, p.PrefillHost)},
		{Name: "bootstrap_room", Value: strconv.AppendInt(nil, p.Room, 10)},
	}
	if p.BootstrapPort > 0 {
		ms = append(ms, openai.Member{Name: "bootstrap_port", Value: strconv.AppendInt(nil, int64(p.BootstrapPort), 10)})
	}
	return ms
}

func (b bootstrap) Prefill(p Pair) openai.Rewrite {
	// The prefill response is discarded; not streaming it is cheaper.
	return openai.Rewrite{Remove: []string{"stream", "stream_options"}, Set: b.members(p)}
}

func (b bootstrap) Decode(p Pair, _ []byte) (openai.Rewrite, error) {
	if p.PrefillHost == "" {
		return openai.Rewrite{}, fmt.Errorf("no prefill host for the bootstrap protocol")
	}
	return openai.Rewrite{Set: b.members(p)}, nil
}
