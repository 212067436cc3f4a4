package platform

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

type stateLock struct{ f *os.File }

// lockState makes sure one `kthena up` at a time uses a state directory.
func lockState(dir string) (*stateLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("another `kthena up` is using %s", dir)
	}
	return &stateLock{f: f}, nil
}

func (l *stateLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}

// networkLock holds the pod and Service address ranges of one running
// platform: pods in 127.<pod>.0.0/16, Services in 127.<pod+1>.0.0/16.
// Platforms running side by side (a test and a benchmark, say) each hold a
// different pair, claimed with a lock file under the temporary directory.
type networkLock struct {
	pod int
	f   *os.File
}

// claimNetworks takes the pair starting at prefer (the one this state
// directory used last) when it is free, else the first free pair among
// 1, 3, 5, ... 251.
func claimNetworks(prefer int) (*networkLock, error) {
	candidates := []int{}
	if prefer > 0 && prefer%2 == 1 && prefer < 253 {
		candidates = append(candidates, prefer)
	}
	for p := 1; p < 253; p += 2 {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("kthena-network-127.%d.lock", p)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = f.Close()
			continue
		}
		return &networkLock{pod: p, f: f}, nil
	}
	return nil, fmt.Errorf("every local pod network is in use by another `kthena up`")
}

func (l *networkLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	_ = l.f.Close()
}
