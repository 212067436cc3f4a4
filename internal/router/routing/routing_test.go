package routing

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	networkingv1alpha1 "github.com/kthena/kthena/api/networking/v1alpha1"
)

func ptr[T any](v T) *T { return &v }

func route(name string, rules ...*networkingv1alpha1.Rule) *networkingv1alpha1.ModelRoute {
	return &networkingv1alpha1.ModelRoute{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(time.Unix(0, 0))},
		Spec: networkingv1alpha1.ModelRouteSpec{ModelName: "m", Rules: rules}}
}

func rule(mm *networkingv1alpha1.ModelMatch, servers ...string) *networkingv1alpha1.Rule {
	r := &networkingv1alpha1.Rule{ModelMatch: mm}
	for _, s := range servers {
		r.TargetModels = append(r.TargetModels, &networkingv1alpha1.TargetModel{ModelServerName: s})
	}
	return r
}

func TestMatch(t *testing.T) {
	m := NewMatcher()
	rs := []*networkingv1alpha1.ModelRoute{
		route("r1",
			rule(&networkingv1alpha1.ModelMatch{Headers: map[string]*networkingv1alpha1.StringMatch{"x-a": {Exact: ptr("1")}, "x-b": {Prefix: ptr("p")}}}, "both"),
			rule(&networkingv1alpha1.ModelMatch{Uri: &networkingv1alpha1.StringMatch{Regex: ptr("^/v1/comp")}}, "uri"),
			rule(&networkingv1alpha1.ModelMatch{Body: &networkingv1alpha1.BodyMatch{Model: ptr("other")}}, "body")),
		route("r2", rule(nil, "fallback")),
	}
	cases := []struct {
		name, path, model string
		hdr               http.Header
		want              string
	}{
		{"headers ANDed", "/v1/chat/completions", "m", http.Header{"X-A": {"1"}, "X-B": {"pq"}}, "ns/both"},
		{"one header missing", "/v1/chat/completions", "m", http.Header{"X-A": {"1"}}, "ns/fallback"},
		{"uri regex", "/v1/completions", "m", nil, "ns/uri"},
		{"body model mismatch goes to next route", "/v1/chat/completions", "m", nil, "ns/fallback"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := m.Match(rs, false, Input{Model: c.model, Path: c.path, Headers: c.hdr}, func(int) int { return 0 })
			if err != nil || got.ModelServer != c.want {
				t.Fatalf("got %q, %v; want %q", got.ModelServer, err, c.want)
			}
		})
	}
	if _, err := m.Match(nil, false, Input{}, func(int) int { return 0 }); err != ErrNoRoute {
		t.Fatalf("no routes: %v", err)
	}
}

func TestWeights(t *testing.T) {
	r := rule(nil, "a", "b")
	r.TargetModels[0].Weight = ptr(uint32(30))
	r.TargetModels[1].Weight = ptr(uint32(70))
	m := NewMatcher()
	for x, want := range map[int]string{0: "ns/a", 29: "ns/a", 30: "ns/b", 99: "ns/b"} {
		got, err := m.Match([]*networkingv1alpha1.ModelRoute{route("r", r)}, false, Input{}, func(n int) int {
			if n != 100 {
				t.Fatalf("total weight %d", n)
			}
			return x
		})
		if err != nil || got.ModelServer != want {
			t.Fatalf("pick %d: %q %v", x, got.ModelServer, err)
		}
	}
	zero := rule(nil, "a")
	zero.TargetModels[0].Weight = ptr(uint32(0))
	if _, err := m.Match([]*networkingv1alpha1.ModelRoute{route("r", zero)}, false, Input{}, func(int) int { return 0 }); err == nil {
		t.Fatal("zero total weight accepted")
	}
}

// FuzzMatch feeds arbitrary match patterns and inputs; matching must never
// panic and must return a target of the route when it succeeds.
func FuzzMatch(f *testing.F) {
	f.Add("premium", "pre", "^eu-[0-9]+$", "/v1/chat/completions", "x-user", "premium-1", "m")
	f.Add("", "", "(", "", "", "", "")
	f.Add("a", "b", "[[:alpha:]]*", "/v1/completions", "X-Region", "eu-1", "other")
	f.Fuzz(func(t *testing.T, exact, prefix, regex, path, hname, hval, model string) {
		m := NewMatcher()
		rs := []*networkingv1alpha1.ModelRoute{route("r",
			rule(&networkingv1alpha1.ModelMatch{Headers: map[string]*networkingv1alpha1.StringMatch{hname: {Exact: ptr(exact)}}}, "a"),
			rule(&networkingv1alpha1.ModelMatch{Uri: &networkingv1alpha1.StringMatch{Prefix: ptr(prefix)}, Body: &networkingv1alpha1.BodyMatch{Model: ptr(model)}}, "b"),
			rule(&networkingv1alpha1.ModelMatch{Headers: map[string]*networkingv1alpha1.StringMatch{hname: {Regex: ptr(regex)}}}, "c"),
		)}
		h := http.Header{}
		h.Set(hname, hval)
		got, err := m.Match(rs, false, Input{Model: model, Path: path, Headers: h}, func(n int) int { return n - 1 })
		if err == nil && got.Route != rs[0] {
			t.Fatalf("target from unknown route")
		}
	})
}
