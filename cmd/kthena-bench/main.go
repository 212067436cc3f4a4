// Command kthena-bench runs the router benchmarks and writes Markdown under
// docs/bench/.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kthena/kthena/internal/router/bench"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "overhead" {
		fmt.Fprintln(os.Stderr, "usage: kthena-bench overhead [flags]   (quality: not built yet)")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("overhead", flag.ExitOnError)
	o := bench.OverheadOptions{PromptBytes: []int{100, 200 << 10}}
	fs.IntVar(&o.Engines, "engines", 4, "echo engines")
	fs.IntVar(&o.Concurrency, "concurrency", 16, "closed-loop clients")
	fs.DurationVar(&o.Duration, "duration", 8*time.Second, "time per scenario")
	out := fs.String("out", "docs/bench", "output directory")
	_ = fs.Parse(os.Args[2:])
	rows, err := bench.RunOverhead(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	md := bench.Markdown(rows, o)
	fmt.Print(md)
	if *out != "" {
		_ = os.MkdirAll(*out, 0o755)
		if err := os.WriteFile(filepath.Join(*out, "overhead.md"), []byte("# Router overhead\n\n"+md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
