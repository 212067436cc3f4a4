package runner

import (
	"flag"
	"strings"
	"testing"
)

// TestBindAddress: --bind-address applies to the router and metrics ports,
// never to the debug port, which stays on localhost.
func TestBindAddress(t *testing.T) {
	for args, want := range map[string][3]string{
		"":                                {":8080", ":9090", "127.0.0.1:15000"},
		"--bind-address=127.1.0.7":        {"127.1.0.7:8080", "127.1.0.7:9090", "127.0.0.1:15000"},
		"--bind-address=::1 --port=81":    {"[::1]:81", "[::1]:9090", "127.0.0.1:15000"},
		"--metrics-port=0 --debug-port=0": {":8080", "", ""},
	} {
		var o Options
		fs := flag.NewFlagSet("router", flag.ContinueOnError)
		o.BindFlags(fs)
		var argv []string
		if args != "" {
			argv = strings.Fields(args)
		}
		if err := fs.Parse(argv); err != nil {
			t.Fatal(err)
		}
		o.finalize(&o)
		if got := [3]string{o.Addr, o.MetricsAddr, o.DebugAddr}; got != want {
			t.Errorf("%q: listen on %q, want %q", args, got, want)
		}
	}
}
