package faultbench

import (
	"fmt"
	"strings"
	"time"
)

// Table is the reports as a Markdown table, with each scenario's target.
func Table(rs []Report) string {
	var b strings.Builder
	b.WriteString("| scenario | sent | succeeded | failed visibly | lost | p99 before | p99 during the fault | max during | fault lasted | target |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s | %s | %s | %s | %s |\n", r.Scenario.Name, r.Sent, r.Succeeded, r.Failed, r.Lost,
			ms(r.P99Before), ms(r.P99During), ms(r.MaxDuring), r.FaultTook.Round(100*time.Millisecond), verdict(r))
	}
	return b.String()
}

// verdict says whether the scenario met its target: 0 lost everywhere, and
// 0 failed where the issue asks for it.
func verdict(r Report) string {
	var miss []string
	if r.InjectErr != nil {
		miss = append(miss, "fault not injected cleanly: "+r.InjectErr.Error())
	}
	if r.Lost > 0 {
		miss = append(miss, fmt.Sprintf("%d lost", r.Lost))
	}
	if r.Scenario.NoFailures && r.Failed > 0 {
		miss = append(miss, fmt.Sprintf("%d failed", r.Failed))
	}
	if len(miss) == 0 {
		if r.Scenario.NoFailures {
			return "met (0 lost, 0 failed)"
		}
		return "met (0 lost)"
	}
	return "missed: " + strings.Join(miss, "; ")
}

// Samples lists what the failed and lost requests saw, per scenario.
func Samples(rs []Report) string {
	var b strings.Builder
	for _, r := range rs {
		for _, s := range r.FailedSamples {
			fmt.Fprintf(&b, "- %s, failed: %s\n", r.Scenario.Name, s)
		}
		for _, s := range r.LostSamples {
			fmt.Fprintf(&b, "- %s, lost: %s\n", r.Scenario.Name, s)
		}
	}
	return b.String()
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
