package platform

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Process is one child binary of the platform (etcd, kube-apiserver, the
// controller manager, the router). It runs in its own process group, dies
// with the platform (Pdeathsig) and writes its output to a log file under
// the state directory.
type Process struct {
	Name    string
	Path    string
	Args    []string
	Env     []string
	LogPath string
	// ExtraFiles are inherited as descriptors 3, 4, ... by every start
	// (the router's listening socket, kept open across restarts).
	ExtraFiles []*os.File

	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// Start launches the process.
func (p *Process) Start() error {
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s: %s started\n", time.Now().Format(time.RFC3339), p.Name)
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = p.ExtraFiles
	cmd.SysProcAttr = ChildAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting %s: %w", p.Name, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// ChildAttr puts a child in its own process group and kills it when the
// platform's thread dies.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL and waits for the exit.
func (p *Process) Stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return // already stopped: its pgid may belong to another process now
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Anything the process left in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Exited reports a non-nil error when the process has already exited.
func (p *Process) Exited() error {
	select {
	case <-p.done:
		if err := p.Err(); err != nil {
			return fmt.Errorf("%s exited: %w (log: %s)", p.Name, err, p.LogPath)
		}
		return fmt.Errorf("%s exited (log: %s)", p.Name, p.LogPath)
	default:
		return nil
	}
}
