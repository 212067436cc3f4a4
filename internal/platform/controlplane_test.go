package platform

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestLoadPortsRecordsRouter: ports.json names the router's port for clients
// such as `kthena chat`, keeps free ports across starts, and never hands the
// router's port to another listener.
func TestLoadPortsRecordsRouter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ports.json")
	first, err := loadPorts(path, 18080)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk map[string]int
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk["router"] != 18080 || onDisk["apiServer"] != first.APIServer {
		t.Fatalf("ports.json %s", data)
	}

	// A saved port that equals the router's is replaced.
	first.APIServer = 18080
	data, _ = json.Marshal(first)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := loadPorts(path, 18080)
	if err != nil {
		t.Fatal(err)
	}
	if second.APIServer == 18080 || second.EtcdClient != first.EtcdClient || second.Router != 18080 {
		t.Fatalf("second start %+v, first %+v", second, first)
	}
}

// TestClaimNetworks: two platforms side by side get different pod and
// Service ranges; a released range is taken again by the state directory
// that used it.
func TestClaimNetworks(t *testing.T) {
	a, err := claimNetworks(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := claimNetworks(a.pod)
	if err != nil {
		t.Fatal(err)
	}
	if a.pod == b.pod || a.pod%2 != 1 || b.pod%2 != 1 {
		t.Fatalf("claimed 127.%d and 127.%d", a.pod, b.pod)
	}
	prefer := b.pod
	b.release()
	c, err := claimNetworks(prefer)
	if err != nil {
		t.Fatal(err)
	}
	defer c.release()
	a.release()
	if c.pod != prefer {
		t.Fatalf("claimed 127.%d, want the released 127.%d again", c.pod, prefer)
	}
}
