package faultbench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		r    Report
		want string
	}{
		{Report{Scenario: Scenario{}, Failed: 3}, "met (0 lost)"},
		{Report{Scenario: Scenario{NoFailures: true}}, "met (0 lost, 0 failed)"},
		{Report{Scenario: Scenario{NoFailures: true}, Failed: 2, Lost: 1}, "missed: 1 lost; 2 failed"},
		{Report{Scenario: Scenario{}, InjectErr: errors.New("boom")}, "missed: fault not injected cleanly: boom"},
	} {
		if got := verdict(c.r); got != c.want {
			t.Errorf("verdict(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}

func TestP99(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := p99(ds); got != 198*time.Millisecond {
		t.Errorf("p99 of 1..200 ms = %s", got)
	}
	if p99(nil) != 0 {
		t.Error("p99 of nothing")
	}
	table := Table([]Report{{Scenario: Scenario{Name: "x"}, Sent: 5, Succeeded: 5, P99Before: time.Millisecond}})
	if !strings.Contains(table, "| x | 5 | 5 | 0 | 0 | 1 ms | - | - |") {
		t.Errorf("table:\n%s", table)
	}
}
