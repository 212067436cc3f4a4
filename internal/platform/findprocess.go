package platform

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// FindProcess is the PID of a running process whose command line (argv)
// match accepts, or 0 (Linux /proc). Benchmarks and tests use it to fault
// a process the platform started (kill it, stop it).
func FindProcess(match func(argv []string) bool) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			return pid
		}
	}
	return 0
}

// ChildPID is the PID of the platform's child started from binary (a path)
// whose command line mentions stateDir, or 0. Other platforms on the
// machine (tests, benchmarks) run the same kube-apiserver and etcd
// binaries, and must not be hit.
func ChildPID(binary, stateDir string) int {
	return FindProcess(func(argv []string) bool {
		return argv[0] == binary && slices.ContainsFunc(argv, func(a string) bool { return strings.Contains(a, stateDir) })
	})
}
