package v1alpha1

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

func stickyServer(ss *networkingv1alpha1.SessionSticky) *networkingv1alpha1.ModelServer {
	return &networkingv1alpha1.ModelServer{Spec: networkingv1alpha1.ModelServerSpec{
		InferenceEngine:  networkingv1alpha1.VLLM,
		WorkloadSelector: &networkingv1alpha1.WorkloadSelector{MatchLabels: map[string]string{"app": "m"}},
		TrafficPolicy:    &networkingv1alpha1.TrafficPolicy{SessionSticky: ss},
	}}
}

func TestValidateSessionSticky(t *testing.T) {
	src := func(typ networkingv1alpha1.SessionKeySourceType, name string) networkingv1alpha1.SessionKeySource {
		return networkingv1alpha1.SessionKeySource{Type: typ, Name: name}
	}
	many := make([]networkingv1alpha1.SessionKeySource, 17)
	for i := range many {
		many[i] = src(networkingv1alpha1.SessionKeySourceQuery, "q")
	}
	cases := []struct {
		name string
		ss   *networkingv1alpha1.SessionSticky
		want string // a field path in the error, "" for valid
	}{
		{"unset", nil, ""},
		{"every source type", &networkingv1alpha1.SessionSticky{SessionAffinitySeconds: ptr.To[int32](60), Sources: []networkingv1alpha1.SessionKeySource{
			src(networkingv1alpha1.SessionKeySourceHeader, "X-Session-ID"), src(networkingv1alpha1.SessionKeySourceQuery, "session id"),
			src(networkingv1alpha1.SessionKeySourceCookie, "sid"), src(networkingv1alpha1.SessionKeySourceJWTClaim, "https://example.com/tenant"),
		}}, ""},
		{"no sources", &networkingv1alpha1.SessionSticky{}, "spec.trafficPolicy.sessionSticky.sources"},
		{"too many sources", &networkingv1alpha1.SessionSticky{Sources: many}, "spec.trafficPolicy.sessionSticky.sources"},
		{"zero ttl", &networkingv1alpha1.SessionSticky{SessionAffinitySeconds: ptr.To[int32](0), Sources: many[:1]}, "spec.trafficPolicy.sessionSticky.sessionAffinitySeconds"},
		{"header with a space", &networkingv1alpha1.SessionSticky{Sources: []networkingv1alpha1.SessionKeySource{
			src(networkingv1alpha1.SessionKeySourceQuery, "q"), src(networkingv1alpha1.SessionKeySourceHeader, "X Session")}}, "spec.trafficPolicy.sessionSticky.sources[1].name"},
		{"cookie with a semicolon", &networkingv1alpha1.SessionSticky{Sources: []networkingv1alpha1.SessionKeySource{
			src(networkingv1alpha1.SessionKeySourceCookie, "a;b")}}, "spec.trafficPolicy.sessionSticky.sources[0].name"},
		{"empty claim", &networkingv1alpha1.SessionSticky{Sources: []networkingv1alpha1.SessionKeySource{
			src(networkingv1alpha1.SessionKeySourceJWTClaim, "")}}, "spec.trafficPolicy.sessionSticky.sources[0].name"},
		{"unknown type", &networkingv1alpha1.SessionSticky{Sources: []networkingv1alpha1.SessionKeySource{
			src("Body", "session")}}, "spec.trafficPolicy.sessionSticky.sources[0].type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := ValidateModelServer(stickyServer(c.ss))
			if c.want == "" {
				if len(errs) > 0 {
					t.Fatalf("valid spec rejected: %v", errs.ToAggregate())
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("accepted; want an error on %s", c.want)
			}
			if msg := errs.ToAggregate().Error(); !strings.Contains(msg, c.want+":") {
				t.Fatalf("error does not name %s: %s", c.want, msg)
			}
		})
	}
}
