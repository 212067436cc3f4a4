package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// podWorker runs one pod.
type podWorker struct {
	a         *Agent
	uid       types.UID
	key       string
	namespace string
	name      string

	mu          sync.Mutex
	pod         *corev1.Pod
	ip          string
	ctrs        []*container
	failReason  string // the pod failed before running (no runner, bad env)
	failMessage string
	startTime   metav1.Time
	// reportedReady is the readiness last printed on the terminal.
	reportedReady bool

	stopping  chan struct{} // closed when termination starts
	stopOnce  sync.Once
	finalize  bool // delete the pod from the API server once stopped
	dirty     chan struct{}
	loopsDone chan struct{}
}

// container is one container's runtime state.
type container struct {
	spec     corev1.Container
	argv     []string
	env      []string
	logPath  string
	state    corev1.ContainerState
	last     corev1.ContainerState
	restarts int32
	ready    bool
	started  bool
	final    bool // will not run again
	pgid     int
	exited   chan struct{}
}

func newPodWorker(a *Agent, pod *corev1.Pod) *podWorker {
	return &podWorker{
		a: a, uid: pod.UID, key: pod.Namespace + "/" + pod.Name, namespace: pod.Namespace, name: pod.Name, pod: pod.DeepCopy(),
		stopping: make(chan struct{}), dirty: make(chan struct{}, 1), loopsDone: make(chan struct{}),
	}
}

func (w *podWorker) setPod(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod = pod.DeepCopy()
	w.mu.Unlock()
}

func (w *podWorker) gracePeriod() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if g := w.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return time.Duration(*g) * time.Second
	}
	return 30 * time.Second
}

func (w *podWorker) markDirty() {
	select {
	case w.dirty <- struct{}{}:
	default:
	}
}

// run starts the containers and reports status until the pod stops.
func (w *podWorker) run(ctx context.Context) {
	a := w.a
	w.mu.Lock()
	pod := w.pod
	w.ip = a.ips.allocate(pod.UID, pod.Status.PodIP)
	w.startTime = metav1.Now()
	if pod.Status.StartTime != nil {
		w.startTime = *pod.Status.StartTime
	}
	w.mu.Unlock()

	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		w.statusLoop(ctx)
	}()
	w.markDirty()

	if err := w.prepare(ctx); err != nil {
		w.mu.Lock()
		var nr errNoRunner
		if errors.As(err, &nr) {
			w.failReason = "NoRunner"
		} else {
			w.failReason = "CreateContainerConfigError"
		}
		w.failMessage = err.Error()
		w.mu.Unlock()
		a.event(ctx, pod, corev1.EventTypeWarning, w.failReason, err.Error())
		a.opts.Progress("pod %s failed: %s", w.key, err.Error())
		w.markDirty()
	} else {
		var wg sync.WaitGroup
		for _, c := range w.ctrs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.containerLoop(ctx, c)
			}()
		}
		wg.Wait()
	}
	close(w.loopsDone)
	w.markDirty()
	<-statusDone
	w.mu.Lock()
	finalize := w.finalize
	w.mu.Unlock()
	if finalize && ctx.Err() == nil {
		w.mu.Lock()
		p := w.pod
		w.mu.Unlock()
		if err := a.finalizeDelete(ctx, p); err != nil {
			a.opts.Log.Error(err, "deleting terminated pod", "pod", w.key)
		}
	}
}

// prepare resolves every container's process and environment.
func (w *podWorker) prepare(ctx context.Context) error {
	a := w.a
	w.mu.Lock()
	pod, ip := w.pod, w.ip
	w.mu.Unlock()
	prev := map[string]corev1.ContainerStatus{}
	for _, s := range pod.Status.ContainerStatuses {
		prev[s.Name] = s
	}
	files, notes, err := materialise(ctx, a.opts.Client, pod, a.podDir(pod.UID), a.opts.API)
	if err != nil {
		return err
	}
	var ctrs []*container
	for i := range pod.Spec.Containers {
		spec := pod.Spec.Containers[i]
		env, order, err := containerEnv(ctx, a.opts.Client, pod, &spec, ip, a.opts.NodeName)
		if err != nil {
			return err
		}
		mounts := files.mounts(&spec)
		for k, v := range env {
			env[k] = rewritePaths(v, mounts)
		}
		if _, set := env["KUBECONFIG"]; !set && files.kubeconfig != "" {
			env["KUBECONFIG"] = files.kubeconfig
			order = append(order, "KUBECONFIG")
		}
		l, err := a.resolve(spec.Image, rewriteAll(expandAll(spec.Command, env), mounts), rewriteAll(expandAll(spec.Args, env), mounts), ip)
		if err != nil {
			return err
		}
		if l.note != "" {
			notes = append(notes, spec.Name+": "+l.note)
		}
		procEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "HOSTNAME=" + pod.Name}
		for _, k := range order {
			procEnv = append(procEnv, k+"="+env[k])
		}
		c := &container{
			spec: spec, argv: l.argv, env: procEnv,
			logPath:  LogPath(a.opts.StateDir, pod.Namespace, pod.Name, spec.Name),
			restarts: prev[spec.Name].RestartCount,
			state:    corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		}
		ctrs = append(ctrs, c)
	}
	w.mu.Lock()
	w.ctrs = ctrs
	w.mu.Unlock()
	if len(notes) > 0 {
		note := strings.Join(notes, "; ")
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, RunnerAnnotation, note)
		if _, err := a.opts.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && ctx.Err() == nil {
			a.opts.Log.V(2).Info("cannot annotate pod", "pod", w.key, "err", err.Error())
		}
		a.event(ctx, pod, corev1.EventTypeNormal, "Simulated", note)
		a.opts.Progress("pod %s: %s", w.key, note)
	}
	return nil
}

func (w *podWorker) isStopping() bool {
	select {
	case <-w.stopping:
		return true
	default:
		return false
	}
}

// containerLoop runs one container, restarting it as restartPolicy says.
func (w *podWorker) containerLoop(ctx context.Context, c *container) {
	a := w.a
	backoff := time.Duration(0)
	for {
		if w.isStopping() || ctx.Err() != nil {
			w.setFinal(c)
			return
		}
		began := time.Now()
		exitCode, reason, msg := w.runOnce(ctx, c)
		w.mu.Lock()
		term := &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: reason, Message: msg,
			StartedAt: metav1.NewTime(began), FinishedAt: metav1.Now(), ContainerID: fmt.Sprintf("kthena://%d", c.pgid)}
		if c.state.Running != nil {
			term.StartedAt = c.state.Running.StartedAt
		}
		c.state = corev1.ContainerState{Terminated: term}
		c.ready, c.started = false, false
		pod := w.pod
		w.mu.Unlock()
		w.markDirty()
		if w.isStopping() || ctx.Err() != nil {
			w.setFinal(c)
			return
		}
		policy := pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && exitCode == 0) {
			w.setFinal(c)
			return
		}
		if time.Since(began) > 2*a.opts.MaxRestartBackoff {
			backoff = 0
		}
		if backoff == 0 {
			backoff = a.opts.RestartBackoff
		} else {
			backoff = min(2*backoff, a.opts.MaxRestartBackoff)
		}
		w.mu.Lock()
		c.last = c.state
		c.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", backoff, c.spec.Name, pod.Name)}}
		w.mu.Unlock()
		w.markDirty()
		a.event(ctx, pod, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off %s restarting container %s (exit code %d)", backoff, c.spec.Name, exitCode))
		select {
		case <-time.After(backoff):
		case <-w.stopping:
		case <-ctx.Done():
		}
		w.mu.Lock()
		c.restarts++
		w.mu.Unlock()
	}
}

func (w *podWorker) setFinal(c *container) {
	w.mu.Lock()
	c.final = true
	w.mu.Unlock()
	w.markDirty()
}

// runOnce starts the container's process, runs its probes and waits for
// it to exit.
func (w *podWorker) runOnce(ctx context.Context, c *container) (int32, string, string) {
	a := w.a
	if err := os.MkdirAll(filepath.Dir(c.logPath), 0o755); err != nil {
		return 128, "StartError", err.Error()
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 128, "StartError", err.Error()
	}
	defer func() { _ = logf.Close() }()
	w.mu.Lock()
	restarts := c.restarts
	pod := w.pod
	w.mu.Unlock()
	if restarts > 0 {
		fmt.Fprintf(logf, "---- kthena: container %s restarted (restart %d) at %s ----\n", c.spec.Name, restarts, time.Now().Format(time.RFC3339))
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.spec.WorkingDir != "" {
		if st, err := os.Stat(c.spec.WorkingDir); err == nil && st.IsDir() {
			cmd.Dir = c.spec.WorkingDir
		}
	}
	if err := cmd.Start(); err != nil {
		a.event(ctx, pod, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Error: cannot start container %s: %v", c.spec.Name, err))
		return 128, "StartError", err.Error()
	}
	exited := make(chan struct{})
	w.mu.Lock()
	c.pgid = cmd.Process.Pid
	c.exited = exited
	c.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}
	c.started = c.spec.StartupProbe == nil
	c.ready = c.spec.ReadinessProbe == nil && c.started
	w.mu.Unlock()
	w.markDirty()
	a.event(ctx, pod, corev1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s (pid %d): %s", c.spec.Name, cmd.Process.Pid, strings.Join(c.argv, " ")))

	probeCtx, stopProbes := context.WithCancel(ctx)
	go w.probeLoop(probeCtx, c, cmd.Process.Pid)
	err = cmd.Wait()
	close(exited)
	stopProbes()
	// Whatever the container left in its group goes with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	code := int32(0)
	reason := "Completed"
	if err != nil {
		reason = "Error"
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int32(ws.Signal())
			} else {
				code = int32(ee.ExitCode())
			}
		} else {
			code = 1
		}
	}
	return code, reason, ""
}

// probeLoop runs the startup, readiness and liveness probes of a running
// container.
func (w *podWorker) probeLoop(ctx context.Context, c *container, pid int) {
	a := w.a
	w.mu.Lock()
	ip := w.ip
	pod := w.pod
	w.mu.Unlock()
	spec := c.spec
	if sp := spec.StartupProbe; sp != nil {
		if !w.probeUntil(ctx, sp, c, ip, true) {
			if ctx.Err() == nil {
				a.event(ctx, pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("Startup probe failed; killing container %s", spec.Name))
				w.killContainer(c, pid, w.gracePeriod())
			}
			return
		}
		w.mu.Lock()
		c.started = true
		c.ready = spec.ReadinessProbe == nil
		w.mu.Unlock()
		w.markDirty()
	}
	if rp := spec.ReadinessProbe; rp != nil {
		go w.readinessLoop(ctx, c, rp, ip)
	}
	if lp := spec.LivenessProbe; lp != nil {
		if !w.probeUntil(ctx, lp, c, ip, false) && ctx.Err() == nil {
			a.event(ctx, pod, corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("Liveness probe failed; container %s will be restarted", spec.Name))
			w.killContainer(c, pid, w.gracePeriod())
		}
	}
}

// probeUntil runs a probe every period. For a startup probe it returns true
// at the first success; for a liveness probe it returns false once the
// failure threshold is reached (and never returns true).
func (w *podWorker) probeUntil(ctx context.Context, p *corev1.Probe, c *container, ip string, startup bool) bool {
	initial, period, _, failure := probeTiming(p)
	if !sleepCtx(ctx, initial) {
		return false
	}
	fails := int32(0)
	for {
		err := probeOnce(ctx, p, &c.spec, ip, c.env)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			fails = 0
			if startup {
				return true
			}
		} else {
			fails++
			if fails >= failure {
				return false
			}
		}
		if !sleepCtx(ctx, period) {
			return false
		}
	}
}

func (w *podWorker) readinessLoop(ctx context.Context, c *container, p *corev1.Probe, ip string) {
	initial, period, success, failure := probeTiming(p)
	if !sleepCtx(ctx, initial) {
		return
	}
	var oks, fails int32
	for {
		err := probeOnce(ctx, p, &c.spec, ip, c.env)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		was := c.ready
		if err == nil {
			oks++
			fails = 0
			if oks >= success {
				c.ready = true
			}
		} else {
			fails++
			oks = 0
			if fails >= failure {
				c.ready = false
			}
		}
		changed := was != c.ready
		w.mu.Unlock()
		if changed {
			w.markDirty()
		}
		// Until ready, probe quickly so that new pods serve soon (a kubelet
		// probes right after initialDelaySeconds, then every period).
		next := period
		if !c.ready && period > time.Second {
			next = time.Second
		}
		if !sleepCtx(ctx, next) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// killContainer stops one container (preStop hook, SIGTERM, SIGKILL after
// grace) so that it restarts.
func (w *podWorker) killContainer(c *container, pgid int, grace time.Duration) {
	w.mu.Lock()
	exited := c.exited
	w.mu.Unlock()
	if exited == nil {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		return
	}
	w.stopContainer(c, pgid, exited, grace)
}

// terminate stops the pod: each running container's preStop hook, then
// SIGTERM, then SIGKILL once the grace period is over, all containers at
// once; with finalize the pod is then deleted from the API server.
func (w *podWorker) terminate(grace time.Duration, finalize bool) {
	first := false
	w.stopOnce.Do(func() {
		first = true
		w.mu.Lock()
		w.finalize = finalize
		w.mu.Unlock()
		close(w.stopping)
	})
	if !first {
		return
	}
	w.mu.Lock()
	type running struct {
		c      *container
		pgid   int
		exited chan struct{}
	}
	var rs []running
	for _, c := range w.ctrs {
		if c.state.Running != nil && c.exited != nil {
			rs = append(rs, running{c, c.pgid, c.exited})
		}
	}
	pod := w.pod
	w.mu.Unlock()
	if finalize && len(rs) > 0 {
		w.a.event(context.Background(), pod, corev1.EventTypeNormal, "Killing", fmt.Sprintf("Stopping containers with grace period %s", grace))
	}
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.stopContainer(r.c, r.pgid, r.exited, grace)
		}()
	}
	wg.Wait()
	<-w.loopsDone
}

// statusLoop writes the pod's status whenever it changes, until the
// containers have stopped.
func (w *podWorker) statusLoop(ctx context.Context) {
	for {
		select {
		case <-w.dirty:
		case <-w.loopsDone:
			// one last write below, unless the platform is stopping
		case <-ctx.Done():
			return
		}
		done := false
		select {
		case <-w.loopsDone:
			done = true
		default:
		}
		w.mu.Lock()
		finalize := w.finalize
		w.mu.Unlock()
		if done && w.isStopping() && !finalize {
			return // platform shutdown: leave the status for the next start
		}
		if err := w.writeStatus(ctx); err != nil && ctx.Err() == nil && !apierrors.IsNotFound(err) {
			w.a.opts.Log.V(2).Info("pod status update failed", "pod", w.key, "err", err.Error())
			w.markDirty()
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return
			}
		}
		if done {
			return
		}
		// Coalesce bursts of changes.
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return
		}
	}
}

func (w *podWorker) writeStatus(ctx context.Context) error {
	pods := w.a.opts.Client.CoreV1().Pods(w.namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != w.uid {
			return nil
		}
		st := w.computeStatus(cur.Status)
		cur.Status = st
		if _, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return err
		}
		w.reportReady(&st)
		return nil
	})
}

// reportReady prints a progress line when the pod becomes ready or stops
// being ready.
func (w *podWorker) reportReady(st *corev1.PodStatus) {
	ready := false
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	w.mu.Lock()
	changed := ready != w.reportedReady
	w.reportedReady = ready
	w.mu.Unlock()
	switch {
	case changed && ready:
		w.a.opts.Progress("pod %s ready on %s", w.key, st.PodIP)
	case changed && !w.isStopping():
		w.a.opts.Progress("pod %s not ready (%s)", w.key, st.Phase)
	}
}

// computeStatus derives the pod status from the containers' state.
func (w *podWorker) computeStatus(old corev1.PodStatus) corev1.PodStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := old
	st.HostIP = "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.PodIP = w.ip
	st.PodIPs = []corev1.PodIP{{IP: w.ip}}
	st.StartTime = &w.startTime
	st.Reason, st.Message = "", ""
	var statuses []corev1.ContainerStatus
	allReady, anyRunning, allFinal, anyFailed := len(w.ctrs) > 0, false, len(w.ctrs) > 0, false
	for _, c := range w.ctrs {
		id := ""
		if c.pgid != 0 {
			id = fmt.Sprintf("kthena://%d", c.pgid)
		}
		started := c.started
		statuses = append(statuses, corev1.ContainerStatus{
			Name: c.spec.Name, Image: c.spec.Image, ImageID: "kthena-local://" + c.spec.Image, ContainerID: id,
			State: c.state, LastTerminationState: c.last, Ready: c.ready, RestartCount: c.restarts, Started: &started,
		})
		allReady = allReady && c.ready
		if c.state.Running != nil || (c.state.Waiting != nil && c.restarts > 0) || (c.state.Waiting != nil && c.state.Waiting.Reason == "CrashLoopBackOff") {
			anyRunning = true
		}
		allFinal = allFinal && c.final && c.state.Terminated != nil
		if c.state.Terminated != nil && c.state.Terminated.ExitCode != 0 {
			anyFailed = true
		}
	}
	if w.failReason != "" {
		statuses = nil
		for _, ctr := range w.pod.Spec.Containers {
			f := false
			statuses = append(statuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, Started: &f,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: w.failReason, Message: w.failMessage}}})
		}
		allReady = false
	}
	st.ContainerStatuses = statuses
	switch {
	case w.failReason != "":
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = w.failReason, w.failMessage
	case allFinal && !w.isStopping() && anyFailed:
		st.Phase = corev1.PodFailed
	case allFinal && !w.isStopping():
		st.Phase = corev1.PodSucceeded
	case anyRunning:
		st.Phase = corev1.PodRunning
	case allFinal:
		// stopped by deletion: keep the phase it had
	default:
		if st.Phase == "" || st.Phase == corev1.PodRunning {
			st.Phase = corev1.PodPending
		}
	}
	cond := func(t corev1.PodConditionType, ok bool, reason string) {
		s := corev1.ConditionFalse
		if ok {
			s, reason = corev1.ConditionTrue, ""
		}
		for i := range st.Conditions {
			if st.Conditions[i].Type == t {
				if st.Conditions[i].Status != s {
					st.Conditions[i].LastTransitionTime = metav1.Now()
				}
				st.Conditions[i].Status, st.Conditions[i].Reason = s, reason
				return
			}
		}
		st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, Reason: reason, LastTransitionTime: metav1.Now()})
	}
	cond(corev1.PodScheduled, true, "")
	cond(corev1.PodReadyToStartContainers, w.failReason == "", "PodFailed")
	cond(corev1.PodInitialized, true, "")
	cond(corev1.ContainersReady, allReady, "ContainersNotReady")
	cond(corev1.PodReady, allReady && readinessGates(w.pod, st.Conditions), "ContainersNotReady")
	return st
}

// readinessGates reports whether every readiness gate's condition is true.
func readinessGates(pod *corev1.Pod, conds []corev1.PodCondition) bool {
	for _, g := range pod.Spec.ReadinessGates {
		ok := false
		for _, c := range conds {
			if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
