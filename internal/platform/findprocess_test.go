package platform

import (
	"os"
	"path/filepath"
	"testing"
)

func TestChildPID(t *testing.T) {
	// This test binary runs in a temporary directory of go test's, which
	// its command line (argv[0]) mentions.
	self, dir := os.Args[0], filepath.Dir(os.Args[0])
	if got := ChildPID(self, dir); got != os.Getpid() {
		t.Fatalf("ChildPID(%s, %s) = %d, want this process %d", self, dir, got, os.Getpid())
	}
	if got := ChildPID(self, "/no/such/state"); got != 0 {
		t.Fatalf("another state directory: found %d", got)
	}
}
