// Package e2e is the end-to-end suite: it builds the binaries, starts the
// local platform (`kthena up`) once, and drives it only through the API
// server and the router.
package e2e

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	routerconfig "github.com/kthena/kthena/internal/router/config"
)

// platformEnv is the running platform.
type platformEnv struct {
	repo, binDir, stateDir string
	routerURL, kubeconfig  string
	cmd                    *exec.Cmd
	out                    *syncBuffer
	done                   chan struct{}
	startup                time.Duration
}

var env *platformEnv

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		if env != nil && env.out != nil {
			fmt.Fprintln(os.Stderr, "---- kthena up output ----\n"+env.out.String())
		}
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 0, err
	}
	repo := filepath.Clean(filepath.Join(wd, "..", ".."))
	tmp, err := os.MkdirTemp("", "kthena-e2e-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	e := &platformEnv{repo: repo, binDir: filepath.Join(tmp, "bin"), stateDir: filepath.Join(tmp, "state")}
	env = e
	build := exec.Command("go", "build", "-o", e.binDir+"/", "./cmd/kthena", "./cmd/kthena-controller-manager", "./cmd/kthena-router", "./cmd/kthena-sim")
	build.Dir = repo
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("building binaries: %w\n%s", err, out)
	}
	fmt.Printf("e2e: binaries built in %.1fs\n", time.Since(began).Seconds())
	if err := e.start(); err != nil {
		e.stop()
		return 0, err
	}
	code := m.Run()
	began = time.Now()
	if err := e.stop(); err != nil {
		return 1, err
	}
	fmt.Printf("e2e: kthena up stopped in %.1fs; no process left\n", time.Since(began).Seconds())
	return code, nil
}

var servingLine = regexp.MustCompile(`Kthena is serving: kubectl --kubeconfig (\S+) `)
var routerLine = regexp.MustCompile(`router \((http://127\.0\.0\.1:\d+)\)`)

// start runs `kthena up` and waits for its "serving" line.
func (e *platformEnv) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	// Kthena's default scheduler plus the LoRA affinity filter.
	cfg := strings.Replace(routerconfig.Default, "      - least-request\n    Score:", "      - least-request\n      - lora-affinity\n    Score:", 1)
	if cfg == routerconfig.Default {
		return fmt.Errorf("cannot add lora-affinity to the router's default configuration")
	}
	cfgPath := filepath.Join(filepath.Dir(e.stateDir), "router-config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	began := time.Now()
	e.cmd = exec.Command(filepath.Join(e.binDir, "kthena"), "up", "--state-dir", e.stateDir,
		"--router-port", fmt.Sprint(port), "--source-dir", e.repo, "--router-config", cfgPath)
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	e.cmd.Stdout, e.cmd.Stderr = pw, pw
	e.out = &syncBuffer{}
	e.done = make(chan struct{})
	if err := e.cmd.Start(); err != nil {
		return err
	}
	go func() {
		_ = e.cmd.Wait()
		_ = pw.Close()
		close(e.done)
	}()
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		closed := false
		for sc.Scan() {
			line := sc.Text()
			e.out.WriteString(line + "\n")
			if m := routerLine.FindStringSubmatch(line); m != nil {
				e.routerURL = m[1]
			}
			if m := servingLine.FindStringSubmatch(line); m != nil && !closed {
				e.kubeconfig = m[1]
				closed = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-e.done:
		return fmt.Errorf("kthena up exited before serving")
	case <-time.After(3 * time.Minute):
		return fmt.Errorf("kthena up not serving after 3 minutes")
	}
	e.startup = time.Since(began)
	fmt.Printf("e2e: kthena up serving after %.1fs (router %s)\n", e.startup.Seconds(), e.routerURL)
	return nil
}

// stop interrupts `kthena up` and checks that nothing it started remains.
func (e *platformEnv) stop() error {
	if e.cmd == nil || e.cmd.Process == nil {
		return nil
	}
	defer func() { e.cmd = nil }()
	_ = e.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-e.done:
	case <-time.After(90 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
		return fmt.Errorf("kthena up did not stop within 90s after SIGINT")
	}
	if left := processesMentioning(e.stateDir, e.binDir); len(left) > 0 {
		return fmt.Errorf("processes left behind after kthena up stopped:\n%s", strings.Join(left, "\n"))
	}
	return nil
}

// processesMentioning lists processes whose command line mentions one of
// the given paths.
func processesMentioning(paths ...string) []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(string(data), "\x00", " ")
		for _, p := range paths {
			if strings.Contains(cmdline, p) {
				out = append(out, d.Name()+": "+cmdline)
				break
			}
		}
	}
	return out
}
