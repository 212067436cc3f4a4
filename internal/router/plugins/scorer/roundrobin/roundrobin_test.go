package roundrobin

import (
	"context"
	"testing"

	"github.com/kthena/kthena/internal/router/framework"
)

func TestCycles(t *testing.T) {
	eps := []*framework.Endpoint{{Key: "a"}, {Key: "b"}, {Key: "c"}}
	p := &Plugin{}
	var got []int
	for range 6 {
		out := make([]float64, 3)
		p.Score(context.Background(), &framework.Request{}, eps, out)
		for i, v := range out {
			if v == 1 {
				got = append(got, i)
			}
		}
	}
	want := []int{0, 1, 2, 0, 1, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("order %v, want %v", got, want)
		}
	}
}
