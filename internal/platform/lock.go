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
