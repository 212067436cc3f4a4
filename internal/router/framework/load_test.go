package framework

import (
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name     string
		at       time.Time
		interval time.Duration
		want     float64
	}{
		{"built by hand", time.Time{}, 0, 1},
		{"never taken", time.Time{}, time.Second, 0},
		{"just taken", now, time.Second, 1},
		{"one and a half intervals", now.Add(-1500 * time.Millisecond), time.Second, 1},
		{"halfway", now.Add(-3250 * time.Millisecond), time.Second, 0.5},
		{"five intervals", now.Add(-5 * time.Second), time.Second, 0},
		{"a minute", now.Add(-time.Minute), time.Second, 0},
	}
	for _, c := range cases {
		if got := Freshness(c.at, c.interval, now); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSinceAndLoad(t *testing.T) {
	e := &Endpoint{Sent: 15, Done: 7, Metrics: &Metrics{Sent: 10, Done: 5, Running: 3, Waiting: 1}}
	if s, d := e.Since(); s != 5 || d != 2 {
		t.Fatalf("since = %v sent, %v done", s, d)
	}
	if l := e.Load(); l != 7 {
		t.Fatalf("load = %v, want 3+1+5-2", l)
	}
	e.Done = 20 // more ended than the engine ran: never below 0
	if l := e.Load(); l != 0 {
		t.Fatalf("load = %v", l)
	}
}
