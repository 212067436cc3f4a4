package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseQualityMarkdown reads back the per-workload tables of a report
// written by QualityMarkdown (docs/bench/quality.md), so that rows of an
// earlier run whose results were not saved can be merged with new ones.
// It returns the rows and the report's "Last run" paragraph. The KV-index
// tables are not read (save rows with -save-rows to keep them).
func ParseQualityMarkdown(md string) ([]QualityRow, string, error) {
	var rows []QualityRow
	note, wl, inTable := "", "", false
	for n, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "Last run"):
			note = line
		case strings.HasPrefix(line, "### "):
			wl, inTable = strings.TrimPrefix(line, "### "), false
		case strings.HasPrefix(line, "| policy | ok |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|---"):
		case inTable && strings.HasPrefix(line, "| "):
			r, err := parseQualityLine(wl, line)
			if err != nil {
				return nil, "", fmt.Errorf("line %d: %w", n+1, err)
			}
			rows = append(rows, r)
		default:
			inTable = false
		}
	}
	return rows, note, nil
}

func parseQualityLine(wl, line string) (QualityRow, error) {
	c := strings.Split(strings.Trim(line, "| "), " | ")
	if len(c) != 14 {
		return QualityRow{}, fmt.Errorf("%d columns, want 14", len(c))
	}
	r := QualityRow{Workload: wl, Policy: c[0]}
	var err error
	num := func(s, unit string) float64 {
		v, e := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, unit)), 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%q: %w", s, e)
		}
		return v
	}
	ok, total, _ := strings.Cut(c[1], "/")
	r.OK, r.Requests = int(num(ok, "")), int(num(total, ""))
	r.OutputTokPerSec = num(c[2], "")
	r.TTFTP50, r.TTFTP90, r.TTFTP99 = num(c[3], "s"), num(c[4], "s"), num(c[5], "s")
	r.TPOTP50, r.TPOTP90 = num(c[6], "ms")/1000, num(c[7], "ms")/1000
	r.E2EP90 = num(c[8], "s")
	r.HitRate = num(c[9], "%") / 100
	for _, f := range strings.Fields(strings.Trim(c[10], "[]")) {
		r.PerEngineRequests = append(r.PerEngineRequests, int(num(f, "")))
	}
	if c[11] != "–" {
		r.MaxShare = num(c[11], "")
	}
	r.Preemptions = int64(num(c[12], ""))
	r.LagP99 = time.Duration(math.Round(num(c[13], "ms")*1000)) * time.Microsecond
	return r, err
}
