package bench

import (
	"fmt"
	"html"
	"strings"
)

var palette = []string{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"}

// series is a named line of (x, y) points.
type series struct {
	name string
	x, y []float64
}

// lineSVG draws series on linear axes starting at zero.
func lineSVG(title, xLabel, yLabel string, ss []series) string {
	const w, h, l, r, t, b = 640.0, 360.0, 60.0, 150.0, 30.0, 45.0
	maxX, maxY := 0.0, 0.0
	for _, s := range ss {
		for i := range s.x {
			maxX, maxY = max(maxX, s.x[i]), max(maxY, s.y[i])
		}
	}
	maxX, maxY = max(maxX, 1e-9)*1.05, max(maxY, 1e-9)*1.1
	px := func(x float64) float64 { return l + (w-l-r)*x/maxX }
	py := func(y float64) float64 { return h - b - (h-t-b)*y/maxY }
	var sb strings.Builder
	header(&sb, w, h, title)
	axes(&sb, l, t, w-r, h-b, xLabel, yLabel)
	for i := 0; i <= 4; i++ {
		y := maxY * float64(i) / 4
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="11">%.3g</text>`+"\n", l-5, py(y)+4, y)
		x := maxX * float64(i) / 4
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="11">%.4g</text>`+"\n", px(x), h-b+15, x)
	}
	for i, s := range ss {
		c := palette[i%len(palette)]
		var pts []string
		for j := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
			fmt.Fprintf(&sb, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(s.x[j]), py(s.y[j]), c)
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		legend(&sb, w-r+10, t+20+float64(i)*18, c, s.name)
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

func header(sb *strings.Builder, w, h float64, title string) {
	fmt.Fprintf(sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif">`+"\n", w, h)
	fmt.Fprintf(sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" text-anchor="middle" font-size="14">%s</text>`+"\n", w/2, html.EscapeString(title))
}

func axes(sb *strings.Builder, x0, y0, x1, y1 float64, xLabel, yLabel string) {
	fmt.Fprintf(sb, `<path d="M%.0f,%.0f V%.0f H%.0f" stroke="black" fill="none"/>`+"\n", x0, y0, y1, x1)
	if xLabel != "" {
		fmt.Fprintf(sb, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="12">%s</text>`+"\n", (x0+x1)/2, y1+35, html.EscapeString(xLabel))
	}
	fmt.Fprintf(sb, `<text x="15" y="%.0f" text-anchor="middle" font-size="12" transform="rotate(-90 15 %.0f)">%s</text>`+"\n", (y0+y1)/2, (y0+y1)/2, html.EscapeString(yLabel))
}

func legend(sb *strings.Builder, x, y float64, color, name string) {
	fmt.Fprintf(sb, `<rect x="%.0f" y="%.0f" width="12" height="12" fill="%s"/><text x="%.0f" y="%.0f" font-size="12">%s</text>`+"\n", x, y-10, color, x+16, y, html.EscapeString(name))
}

// RateSVG plots latency through the router against the offered rate.
func RateSVG(r *OverheadResult) string {
	p50 := series{name: "p50"}
	p99 := series{name: "p99"}
	for _, p := range r.Search {
		p50.x, p50.y = append(p50.x, p.Offered), append(p50.y, float64(p.P50.Microseconds())/1000)
		p99.x, p99.y = append(p99.x, p.Offered), append(p99.y, float64(p.P99.Microseconds())/1000)
	}
	return lineSVG("Latency through the router (100 B prompts, echo engines)", "offered rate (req/s)", "latency (ms)", []series{p50, p99})
}

// QualitySVG draws small multiples: one row per workload, one panel per
// metric (TTFT p90, output throughput, prefix hit rate), one bar per policy,
// each panel on its own scale with the values written over the bars.
func QualitySVG(rows []QualityRow) string {
	var workloads, policies []string
	wi, pi := map[string]int{}, map[string]int{}
	for _, r := range rows {
		if _, ok := wi[r.Workload]; !ok {
			wi[r.Workload] = len(workloads)
			workloads = append(workloads, r.Workload)
		}
		if _, ok := pi[r.Policy]; !ok {
			pi[r.Policy] = len(policies)
			policies = append(policies, r.Policy)
		}
	}
	type metric struct {
		title  string
		format string
		value  func(QualityRow) float64
	}
	metrics := []metric{
		{"TTFT p90 (s, lower is better)", "%.3g", func(r QualityRow) float64 { return r.TTFTP90 }},
		{"output tok/s (higher is better)", "%.0f", func(r QualityRow) float64 { return r.OutputTokPerSec }},
		{"prefix hit rate (%, higher is better)", "%.0f", func(r QualityRow) float64 { return 100 * r.HitRate }},
	}
	vals := make([][][]float64, len(workloads)) // workload, metric, policy
	has := make([][]bool, len(workloads))
	for w := range vals {
		vals[w] = make([][]float64, len(metrics))
		for m := range metrics {
			vals[w][m] = make([]float64, len(policies))
		}
		has[w] = make([]bool, len(policies))
	}
	for _, r := range rows {
		for m, mt := range metrics {
			vals[wi[r.Workload]][m][pi[r.Policy]] = mt.value(r)
		}
		has[wi[r.Workload]][pi[r.Policy]] = true
	}
	ms := make([]barMetric, len(metrics))
	for i, m := range metrics {
		ms[i] = barMetric{m.title, m.format}
	}
	return panelsSVG("Routing quality per workload (simulated seconds)", workloads, policies, ms, vals, has)
}

// barMetric is one panel of panelsSVG.
type barMetric struct{ title, format string }

// panelsSVG draws a row of bar panels per workload, one panel per metric
// and one bar per series; vals[workload][metric][series], has[workload]
// [series] tells which series ran.
func panelsSVG(title string, workloads, policies []string, metrics []barMetric, vals [][][]float64, has [][]bool) string {
	const left, panelW, gap, top, titleH, panelH, axisB = 55.0, 300.0, 45.0, 58.0, 36.0, 120.0, 8.0
	rowH := titleH + panelH + axisB + 14
	w := left + float64(len(metrics))*(panelW+gap)
	h := top + float64(len(workloads))*rowH + 10
	var sb strings.Builder
	header(&sb, w, h, title)
	for i, p := range policies {
		legend(&sb, left+float64(i%6)*150, 40+float64(i/6)*16, palette[i%len(palette)], p)
	}
	for wk, name := range workloads {
		y0 := top + float64(wk)*rowH
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n", 10.0, y0+14, html.EscapeString(name))
		for m, mt := range metrics {
			x0 := left + float64(m)*(panelW+gap)
			py0, py1 := y0+titleH, y0+titleH+panelH // top and baseline of the bars
			top := 0.0                              // the largest value; the scale leaves room for its label
			for _, v := range vals[wk][m] {
				top = max(top, v)
			}
			maxY := max(top, 1e-9) * 1.18
			fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" font-size="11" fill="#444">%s</text>`+"\n", x0, py0-3, html.EscapeString(mt.title))
			fmt.Fprintf(&sb, `<path d="M%.0f,%.0f V%.0f H%.0f" stroke="black" fill="none"/>`+"\n", x0, py0+6, py1, x0+panelW)
			for _, v := range []float64{0, top / 2, top} {
				y := py1 - panelH*v/maxY
				fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="10">%s</text>`+"\n", x0-4, y+4, tickLabel(v))
				if v > 0 {
					fmt.Fprintf(&sb, `<path d="M%.0f,%.1f H%.0f" stroke="#ddd" fill="none"/>`+"\n", x0, y, x0+panelW)
				}
			}
			barW := panelW / float64(len(policies))
			for p, v := range vals[wk][m] {
				if !has[wk][p] {
					continue
				}
				bh := panelH * v / maxY
				x := x0 + barW*float64(p) + barW*0.1
				fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, py1-bh, barW*0.8, bh, palette[p%len(palette)])
				fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%s</text>`+"\n", x+barW*0.4, py1-bh-2, fmt.Sprintf(mt.format, v))
			}
		}
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

// tickLabel prints an axis value: whole numbers from 100 up, else three
// significant digits.
func tickLabel(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}
