package platform

import (
	"sync"
	"time"
)

// Restart back-off of a supervised child: it doubles from minRestartBackoff
// up to maxRestartBackoff, and starts over once a child has run for
// stableRun.
const (
	minRestartBackoff = time.Second
	maxRestartBackoff = 30 * time.Second
	stableRun         = time.Minute
)

// supervisor restarts a started child process whenever it exits, until
// Stop, so that a crashed controller manager, router, kube-apiserver or
// etcd comes back without taking the platform down.
type supervisor struct {
	p        *Process
	progress func(format string, args ...any)

	mu       sync.Mutex // serialises restarts with Stop
	stopping bool
	stop     chan struct{}
	done     chan struct{}
	restarts int
}

func supervise(p *Process, progress func(string, ...any)) *supervisor {
	s := &supervisor{p: p, progress: progress, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *supervisor) run() {
	defer close(s.done)
	backoff := minRestartBackoff
	started := time.Now()
	exited := s.p.Done()
	for {
		select {
		case <-s.stop:
			return
		case <-exited:
		}
		if time.Since(started) >= stableRun {
			backoff = minRestartBackoff
		}
		reason := "exited"
		if err := s.p.Err(); err != nil {
			reason = err.Error()
		}
		s.progress("%s exited (%s); restarting in %s (log: %s)", s.p.Name, reason, backoff, s.p.LogPath)
		select {
		case <-s.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestartBackoff)
		s.mu.Lock()
		if s.stopping {
			s.mu.Unlock()
			return
		}
		err := s.p.Start()
		if err == nil {
			s.restarts++
			exited = s.p.Done()
		}
		s.mu.Unlock()
		if err != nil {
			s.progress("restarting %s: %v", s.p.Name, err)
			closed := make(chan struct{})
			close(closed)
			exited = closed // try again after the next back-off
		}
		started = time.Now()
	}
}

// Restarts is how many times the child has been restarted.
func (s *supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Stop ends supervision and stops the child (SIGTERM, SIGKILL after grace).
func (s *supervisor) Stop(grace time.Duration) {
	s.mu.Lock()
	if !s.stopping {
		s.stopping = true
		close(s.stop)
	}
	s.mu.Unlock()
	<-s.done
	s.p.Stop(grace)
}
