package realserver

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PrometheusScrapeInterval is how often the Prometheus that Prometheus
// starts scrapes its targets: short, so tests see a new value within about
// a second.
const PrometheusScrapeInterval = time.Second

// Prometheus runs a throwaway prometheus server (its TSDB in a temporary
// directory) that scrapes scrapeTargets every PrometheusScrapeInterval, and
// returns its URL (http://127.0.0.1:<port>), ready to answer queries. A
// target is host:port (metrics at /metrics) or a URL naming its scheme and
// metrics path. Every target is its own job, named target0, target1, ...
func Prometheus(t testing.TB, scrapeTargets ...string) string {
	t.Helper()
	bin := lookPath(t, "prometheus")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	text, err := prometheusConfig(scrapeTargets)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // the free port may be taken before prometheus binds it
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		stop, err := startPrometheus(bin, cfg, dir, addr)
		if err == nil {
			t.Cleanup(stop)
			return "http://" + addr
		}
		lastErr = err
	}
	t.Fatalf("starting prometheus: %v", lastErr)
	return ""
}

// prometheusConfig writes one scrape job per target.
func prometheusConfig(targets []string) (string, error) {
	var b strings.Builder
	iv := PrometheusScrapeInterval.String()
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n", iv, iv, iv)
	for i, target := range targets {
		scheme, host, path := "http", target, "/metrics"
		if strings.Contains(target, "://") {
			u, err := url.Parse(target)
			if err != nil {
				return "", fmt.Errorf("scrape target %q: %w", target, err)
			}
			scheme, host = u.Scheme, u.Host
			if u.Path != "" {
				path = u.Path
			}
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			return "", fmt.Errorf("scrape target %q: want host:port or a URL with one: %w", target, err)
		}
		fmt.Fprintf(&b, "  - job_name: target%d\n    scheme: %s\n    metrics_path: %q\n    static_configs:\n      - targets: [%q]\n",
			i, scheme, path, host)
	}
	return b.String(), nil
}

// startPrometheus starts prometheus on addr and waits until it is ready;
// stop kills it and waits for it to exit.
func startPrometheus(bin, cfg, dir, addr string) (stop func(), err error) {
	logFile := filepath.Join(dir, "prometheus.log")
	logOut, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data-"+strings.ReplaceAll(addr, ":", "-"))
	cmd := exec.Command(bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+data,
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logOut, logOut
	if err := cmd.Start(); err != nil {
		_ = logOut.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = logOut.Close() }()
	hc := &http.Client{Timeout: time.Second}
	ready := func() error {
		resp, err := hc.Get("http://" + addr + "/-/ready")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %s", resp.Status)
		}
		return nil
	}
	if err := waitUp(ready, exited, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		out, _ := os.ReadFile(logFile)
		return nil, fmt.Errorf("prometheus on %s: %w: %s", addr, err, out)
	}
	return func() {
		_ = cmd.Process.Kill()
		<-exited
	}, nil
}
