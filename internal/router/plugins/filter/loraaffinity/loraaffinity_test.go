package loraaffinity

import (
	"context"
	"strings"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func TestFilter(t *testing.T) {
	mk := func(key string, models ...string) *framework.Endpoint {
		m := map[string]struct{}{}
		for _, s := range models {
			m[s] = struct{}{}
		}
		return &framework.Endpoint{Key: key, Metrics: &framework.Metrics{Models: m}}
	}
	cases := []struct {
		name string
		req  framework.Request
		want string
	}{
		{"lora kept where loaded", framework.Request{Model: "sql-lora", LoRA: true}, "b"},
		{"base passes", framework.Request{Model: "base"}, "a,b,c"},
		{"unknown adapter none", framework.Request{Model: "x", LoRA: true}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eps := []*framework.Endpoint{mk("a", "base"), mk("b", "base", "sql-lora"), mk("c")}
			var keys []string
			for _, e := range (Plugin{}).Filter(context.Background(), &c.req, eps) {
				keys = append(keys, e.Key)
			}
			if got := strings.Join(keys, ","); got != c.want {
				t.Fatalf("kept %q want %q", got, c.want)
			}
		})
	}
}
