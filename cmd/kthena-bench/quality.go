package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/stdr"

	"github.com/kthena/kthena/internal/router/bench"
)

func init() { subcommands["quality"] = quality }

// quality runs the routing-quality bench (docs/bench/quality.md).
func quality(args []string) error {
	fs := flag.NewFlagSet("quality", flag.ExitOnError)
	o := bench.QualityOptions{Workloads: bench.Workloads(), Policies: bench.Policies(), Log: stdr.New(nil)}
	fs.IntVar(&o.Engines, "engines", 4, "simulated engines")
	fs.StringVar(&o.Profile, "profile", "llama-3.1-8b-h100", "simulator GPU profile")
	fs.Float64Var(&o.TimeScale, "time-scale", 1, "wall seconds per simulated second")
	fs.Float64Var(&o.ScrapeInterval, "scrape-interval", 1, "the router's engine scrape interval, in simulated seconds")
	only := fs.String("policies", "", "comma-separated policy names to run (default all)")
	wl := fs.String("workload", "", "run only the workloads whose name contains this (case-insensitive), or this workload index")
	var extra []string
	fs.Func("config", "add a policy: name=router-config-file (repeatable)", func(v string) error { extra = append(extra, v); return nil })
	rate := fs.Float64("rate", 0, "override every workload's arrival rate (requests per simulated second; multi-turn: users starting per second)")
	out := fs.String("out", "docs/bench", "output directory")
	saveRows := fs.String("save-rows", "", "also write the results as JSON to this file")
	replot := fs.String("replot", "", "do not run: write the report and plot from -save-rows files (comma-separated; a later file's workloads replace an earlier one's)")
	merge := fs.String("merge", "", "do not run: write the report and plot from reports (.md) and -save-rows files (.json), comma-separated; a later file's row replaces an earlier one's of the same workload and policy")
	_ = fs.Parse(args)
	if *replot != "" {
		return replotQuality(o, *replot, *out)
	}
	if *merge != "" {
		return mergeQuality(o, *merge, *out)
	}
	if *rate > 0 {
		for i := range o.Workloads {
			o.Workloads[i].Rate = *rate
		}
	}
	var err error
	if o.Policies, err = named(o.Policies, *only, func(p bench.Policy) string { return p.Name }); err != nil {
		return fmt.Errorf("-policies: %w", err)
	}
	for _, e := range extra {
		name, file, ok := strings.Cut(e, "=")
		if !ok {
			return fmt.Errorf("-config %q: want name=file", e)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		o.Policies = append(o.Policies, bench.Policy{Name: name, Config: string(b)})
	}
	if *wl != "" {
		if i, err := strconv.Atoi(*wl); err == nil {
			if i < 0 || i >= len(o.Workloads) {
				return fmt.Errorf("-workload %d: want 0..%d", i, len(o.Workloads)-1)
			}
			o.Workloads = o.Workloads[i : i+1]
		} else {
			var ws []bench.Workload
			for _, w := range o.Workloads {
				if strings.Contains(strings.ToLower(w.Name), strings.ToLower(*wl)) {
					ws = append(ws, w)
				}
			}
			if len(ws) == 0 {
				return fmt.Errorf("-workload %q matches no workload", *wl)
			}
			o.Workloads = ws
		}
	}
	load0 := loadavg()
	start := time.Now()
	// Sample the 1-minute load average while the bench runs.
	var mu sync.Mutex
	lo, hi := math.Inf(1), math.Inf(-1)
	if v, err := strconv.ParseFloat(strings.Fields(load0 + " x")[0], 64); err == nil {
		lo, hi = v, v
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if v, err := strconv.ParseFloat(strings.Fields(loadavg() + " x")[0], 64); err == nil {
					mu.Lock()
					lo, hi = min(lo, v), max(hi, v)
					mu.Unlock()
				}
			}
		}
	}()
	rows, err := bench.RunQuality(context.Background(), o)
	close(stop)
	if err != nil {
		return err
	}
	mu.Lock()
	o.Note = fmt.Sprintf("Last run: %s UTC, %s wall on %d CPUs shared with other jobs; load average (1/5/15 min) %s at the start, %s at the end, 1-minute load %.2f–%.2f sampled every 15 s during the run.",
		start.UTC().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), runtime.NumCPU(), load0, loadavg(), lo, hi)
	mu.Unlock()
	if *saveRows != "" {
		b, err := json.MarshalIndent(savedRows{Note: o.Note, Rows: rows}, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*saveRows, b, 0o644); err != nil {
			return err
		}
	}
	return writeQuality(o, rows, *out)
}

// mergeQuality merges rows of earlier reports and saved rows per workload
// and policy, so that a run of a few policies keeps the other policies'
// rows of an earlier run (whose rows may only exist as a report).
func mergeQuality(o bench.QualityOptions, files, out string) error {
	type key struct{ wl, policy string }
	rows := map[key]bench.QualityRow{}
	var notes []string
	for _, file := range strings.Split(files, ",") {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var f savedRows
		if strings.HasSuffix(file, ".md") {
			if f.Rows, f.Note, err = bench.ParseQualityMarkdown(string(b)); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
		} else if err := json.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		for _, r := range f.Rows {
			rows[key{r.Workload, r.Policy}] = r
		}
		if f.Note != "" {
			notes = append(notes, f.Note)
		}
	}
	// Rows in the order of the workloads, then of the policies.
	policies := map[string]int{}
	for i, p := range bench.Policies() {
		policies[p.Name] = i
	}
	var ws []bench.Workload
	var merged []bench.QualityRow
	for _, w := range o.Workloads {
		var rs []bench.QualityRow
		for k, r := range rows {
			if k.wl == w.Name {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		slices.SortFunc(rs, func(a, b bench.QualityRow) int {
			pa, oka := policies[a.Policy]
			pb, okb := policies[b.Policy]
			if !oka {
				pa = len(policies)
			}
			if !okb {
				pb = len(policies)
			}
			if pa != pb {
				return pa - pb
			}
			return strings.Compare(a.Policy, b.Policy)
		})
		ws = append(ws, w)
		merged = append(merged, rs...)
	}
	o.Workloads, o.Note = ws, strings.Join(notes, " ")
	return writeQuality(o, merged, out)
}
