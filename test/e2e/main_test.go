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
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kthena/kthena/internal/platform"
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
	code, err := runSuite(m)
	if err != nil {
		return 0, err
	}
	began = time.Now()
	if err := e.stop(); err != nil {
		return 1, err
	}
	fmt.Printf("e2e: kthena up stopped in %.1fs; no process left\n", time.Since(began).Seconds())
	return code, nil
}

// runLast are the tests that run after every other selected test, in this
// order. TestRestartResumes stops and restarts the platform: the pods and
// requests of any test running meanwhile would be cut, and a test after it
// would run on a platform that came back, not the one the suite started.
// Each of them also runs alone (go test ./test/e2e -run TestRestartResumes).
var runLast = []string{"TestRestartResumes"}

// runSuite runs the selected tests in two passes of m.Run: first every test
// but those of runLast (held back by adding them to -test.skip), then those
// of runLast that -test.run and -test.skip select. The order does not depend
// on file names (Go runs a package's tests in the order of its files).
func runSuite(m *testing.M) (int, error) {
	runFlag, skipFlag := flag.Lookup("test.run"), flag.Lookup("test.skip")
	if runFlag == nil || skipFlag == nil || flag.Lookup("test.list").Value.String() != "" {
		return m.Run(), nil
	}
	run, skip := runFlag.Value.String(), skipFlag.Value.String()
	if strings.Contains(skip, "/") {
		return 0, fmt.Errorf("-skip %q: a pattern naming subtests cannot be combined with the suite's own, which holds back %s to run them last", skip, strings.Join(runLast, ", "))
	}
	runTop, runSub, hasSub := strings.Cut(run, "/")
	var last []string
	for _, name := range runLast {
		selected, err := regexp.MatchString(runTop, name)
		if err != nil {
			return 0, fmt.Errorf("-run %q: %w", run, err)
		}
		skipped := false
		if skip != "" {
			if skipped, err = regexp.MatchString(skip, name); err != nil {
				return 0, fmt.Errorf("-skip %q: %w", skip, err)
			}
		}
		if selected && !skipped {
			last = append(last, name)
		}
	}
	code := 0
	// A -run naming only tests of runLast leaves nothing to the first pass.
	onlyLast := true
	for _, name := range strings.Split(strings.Trim(runTop, "^$()"), "|") {
		onlyLast = onlyLast && slices.Contains(runLast, name)
	}
	if !onlyLast {
		held := "^(" + strings.Join(runLast, "|") + ")$"
		if skip != "" {
			held = skip + "|" + held
		}
		if err := skipFlag.Value.Set(held); err != nil {
			return 0, err
		}
		code = m.Run()
		if err := skipFlag.Value.Set(skip); err != nil {
			return 0, err
		}
	}
	if len(last) == 0 || (code != 0 && flag.Lookup("test.failfast").Value.String() == "true") {
		return code, nil
	}
	pattern := "^(" + strings.Join(last, "|") + ")$"
	if hasSub {
		pattern += "/" + runSub
	}
	if err := runFlag.Value.Set(pattern); err != nil {
		return 0, err
	}
	fmt.Printf("e2e: running last: %s\n", strings.Join(last, ", "))
	if c := m.Run(); c != 0 {
		code = c
	}
	return code, runFlag.Value.Set(run)
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
		"--router-port", fmt.Sprint(port), "--source-dir", e.repo, "--router-config", cfgPath,
		// The ModelBooster demo: TestBoosterDemo checks it.
		"--demo="+platform.DemoBooster)
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
