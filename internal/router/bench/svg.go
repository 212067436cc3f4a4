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

// barSVG draws one group of bars per category, one bar per series.
func barSVG(title, yLabel string, categories []string, ss []series) string {
	const w, h, l, r, t, b = 720.0, 380.0, 60.0, 170.0, 30.0, 60.0
	maxY := 0.0
	for _, s := range ss {
		for _, y := range s.y {
			maxY = max(maxY, y)
		}
	}
	maxY = max(maxY, 1e-9) * 1.1
	py := func(y float64) float64 { return h - b - (h-t-b)*y/maxY }
	groupW := (w - l - r) / float64(len(categories))
	barW := groupW * 0.8 / float64(len(ss))
	var sb strings.Builder
	header(&sb, w, h, title)
	axes(&sb, l, t, w-r, h-b, "", yLabel)
	for i := 0; i <= 4; i++ {
		y := maxY * float64(i) / 4
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="end" font-size="11">%.3g</text>`+"\n", l-5, py(y)+4, y)
	}
	for ci, c := range categories {
		x0 := l + groupW*float64(ci) + groupW*0.1
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle" font-size="11">%s</text>`+"\n", x0+groupW*0.4, h-b+15, html.EscapeString(c))
		for si, s := range ss {
			y := s.y[ci]
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x0+barW*float64(si), py(y), barW*0.95, h-b-py(y), palette[si%len(palette)])
		}
	}
	for si, s := range ss {
		legend(&sb, w-r+10, t+20+float64(si)*18, palette[si%len(palette)], s.name)
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

// QualitySVG plots TTFT p90 and prefix hit rate per policy and workload.
func QualitySVG(rows []QualityRow) string {
	var workloads []string
	idx := map[string]int{}
	for _, r := range rows {
		if _, ok := idx[r.Workload]; !ok {
			idx[r.Workload] = len(workloads)
			workloads = append(workloads, r.Workload)
		}
	}
	var policies []string
	pi := map[string]int{}
	for _, r := range rows {
		if _, ok := pi[r.Policy]; !ok {
			pi[r.Policy] = len(policies)
			policies = append(policies, r.Policy)
		}
	}
	ttft := make([]series, len(policies))
	hit := make([]series, len(policies))
	for i, p := range policies {
		ttft[i] = series{name: p, y: make([]float64, len(workloads))}
		hit[i] = series{name: p, y: make([]float64, len(workloads))}
	}
	short := make([]string, len(workloads))
	for i, w := range workloads {
		short[i], _, _ = strings.Cut(w, " (")
	}
	for _, r := range rows {
		ttft[pi[r.Policy]].y[idx[r.Workload]] = r.TTFTP90
		hit[pi[r.Policy]].y[idx[r.Workload]] = 100 * r.HitRate
	}
	a := barSVG("TTFT p90 (simulated s, lower is better)", "seconds", short, ttft)
	b := barSVG("Prefix-cache hit rate (%, higher is better)", "%", short, hit)
	// Stack the two charts in one document.
	a = strings.Replace(a, `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="380"`, `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="380" y="0"`, 1)
	b = strings.Replace(b, `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="380"`, `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="380" y="380"`, 1)
	return `<svg xmlns="http://www.w3.org/2000/svg" width="720" height="760">` + "\n" + a + b + "</svg>\n"
}
