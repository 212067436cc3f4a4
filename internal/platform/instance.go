package platform

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Instance is a platform started in the background by Start, for tests and
// benchmarks that drive it as a user would.
type Instance struct {
	StateDir   string
	Kubeconfig string
	// RouterURL is the router's API address (http://127.0.0.1:PORT).
	RouterURL string
	Ports     Ports
	Client    client.WithWatch

	cancel context.CancelFunc
	exited chan error
}

// Start runs the platform with opts until Stop, and returns once it serves
// (or with the error that ended it). A zero RouterPort picks a free one;
// progress lines go to opts.Out as well when it is set.
func Start(ctx context.Context, opts Options) (*Instance, error) {
	if opts.RouterPort == 0 {
		port, err := freePort(map[int]bool{})
		if err != nil {
			return nil, err
		}
		opts.RouterPort = port
	}
	pr, pw := io.Pipe()
	var tee io.Writer = pw
	if opts.Out != nil {
		tee = io.MultiWriter(pw, opts.Out)
	}
	ready := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "Kthena is serving:") || strings.Contains(line, "control plane ready") {
				select {
				case ready <- struct{}{}:
				default:
				}
			}
		}
	}()
	opts.Out = tee
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	in := &Instance{StateDir: opts.StateDir, Kubeconfig: filepath.Join(opts.StateDir, "kubeconfig"),
		RouterURL: fmt.Sprintf("http://127.0.0.1:%d", opts.RouterPort), cancel: cancel, exited: make(chan error, 1)}
	go func() {
		err := Run(pctx, opts)
		_ = pw.Close()
		in.exited <- err
	}()
	select {
	case <-ready:
	case err := <-in.exited:
		cancel()
		if err == nil {
			err = errors.New("exited")
		}
		return nil, fmt.Errorf("platform: %w (logs: %s)", err, filepath.Join(opts.StateDir, "logs"))
	case <-ctx.Done():
		_ = in.Stop()
		return nil, ctx.Err()
	}
	data, err := os.ReadFile(filepath.Join(opts.StateDir, "ports.json"))
	if err == nil {
		err = json.Unmarshal(data, &in.Ports)
	}
	if err == nil {
		var cfg = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: in.Kubeconfig}, nil)
		rc, cerr := cfg.ClientConfig()
		if cerr == nil {
			rc.QPS, rc.Burst = 50, 100
			in.Client, cerr = client.NewWithWatch(rc, client.Options{Scheme: Scheme()})
		}
		err = cerr
	}
	if err != nil {
		_ = in.Stop()
		return nil, err
	}
	return in, nil
}

// Stop stops the platform and everything it started.
func (in *Instance) Stop() error {
	in.cancel()
	select {
	case err := <-in.exited:
		return err
	case <-time.After(2 * time.Minute):
		return errors.New("the platform did not stop within 2 minutes")
	}
}
