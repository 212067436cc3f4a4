package nodeagent

import (
	"context"
	"fmt"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// minKillGrace is the time a container gets between SIGTERM and SIGKILL
// when its preStop hook used up the grace period, as the kubelet allows.
const minKillGrace = 2 * time.Second

// runPreStop runs a container's preStop hook, as the kubelet does before
// SIGTERM, and returns when it finishes or ctx (the grace period) ends.
// A failing hook is reported, not retried; the container is stopped anyway.
func runPreStop(ctx context.Context, h *corev1.LifecycleHandler, ctr *corev1.Container, podIP string, env []string) error {
	switch {
	case h == nil:
		return nil
	case h.Sleep != nil:
		if !sleepCtx(ctx, time.Duration(h.Sleep.Seconds)*time.Second) {
			return ctx.Err()
		}
		return nil
	case h.Exec != nil || h.HTTPGet != nil || h.TCPSocket != nil:
		// A hook is a probe without the probe's own timeout: only the grace
		// period bounds it.
		timeout := int32(1)
		if d, ok := ctx.Deadline(); ok {
			timeout = max(int32(time.Until(d).Seconds())+1, 1)
		}
		p := &corev1.Probe{TimeoutSeconds: timeout, ProbeHandler: corev1.ProbeHandler{Exec: h.Exec, HTTPGet: h.HTTPGet, TCPSocket: h.TCPSocket}}
		return probeOnce(ctx, p, ctr, podIP, env)
	}
	return fmt.Errorf("preStop hook of container %s has no handler", ctr.Name)
}

// stopContainer runs the preStop hook of a running container, then sends
// SIGTERM to its process group and SIGKILL once the grace period is over
// (at least minKillGrace after SIGTERM if the hook used it all).
func (w *podWorker) stopContainer(c *container, pgid int, exited <-chan struct{}, grace time.Duration) {
	deadline := time.Now().Add(grace)
	w.mu.Lock()
	hook := (*corev1.LifecycleHandler)(nil)
	if c.spec.Lifecycle != nil {
		hook = c.spec.Lifecycle.PreStop
	}
	spec, env, ip, pod := c.spec, c.env, w.ip, w.pod
	w.mu.Unlock()
	if hook != nil && grace > 0 {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		done := make(chan error, 1)
		go func() { done <- runPreStop(ctx, hook, &spec, ip, env) }()
		var err error
		select {
		case err = <-done:
		case <-exited: // the process ended on its own: nothing left to stop
		}
		cancel()
		if err != nil && time.Now().Before(deadline) {
			w.a.event(context.Background(), pod, corev1.EventTypeWarning, "FailedPreStopHook",
				fmt.Sprintf("PreStop hook of container %s failed: %v", spec.Name, err))
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	wait := max(time.Until(deadline), minKillGrace)
	if grace <= 0 {
		wait = 0
	}
	select {
	case <-exited:
	case <-time.After(wait):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}
