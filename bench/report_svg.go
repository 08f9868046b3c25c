package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
)

// The plot's geometry, in SVG user units (pixels at 100%).
const (
	svgWidth = 960
	// The image is svgHeight high, plus a legend line per latency series.
	svgHeight    = 450
	legendHeight = 18
	// The latency panel (left) and the throughput panel (right): plot
	// areas, without the axis labels around them.
	cdfLeft, cdfRight, cdfTop, cdfBottom = 70.0, 560.0, 70.0, 390.0
	barLeft, barRight, barTop, barBottom = 660.0, 930.0, 70.0, 390.0
)

// systemColors gives each system one colour in both panels.
var systemColors = map[string]string{
	SystemSQLite:   "#1f77b4",
	SystemAPI:      "#2ca02c",
	SystemPostgres: "#d62728",
}

func colorOf(system string, i int) string {
	if c, ok := systemColors[system]; ok {
		return c
	}
	other := []string{"#9467bd", "#ff7f0e", "#8c564b", "#17becf"}
	return other[i%len(other)]
}

// svgWriter writes SVG elements, remembering the first write error.
type svgWriter struct {
	w   *bufio.Writer
	err error
}

func (s *svgWriter) printf(format string, args ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, args...)
	}
}

// text writes a text element; attrs are extra attributes, written as given.
func (s *svgWriter) text(x, y float64, attrs, body string) {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(body))
	s.printf(`<text x="%.1f" y="%.1f" %s>%s</text>`+"\n", x, y, attrs, b.String())
}

func (s *svgWriter) line(x1, y1, x2, y2 float64, attrs string) {
	s.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" %s/>`+"\n", x1, y1, x2, y2, attrs)
}

// WriteSVG draws the report as an SVG image: on the left the cumulative
// distribution of end-to-end latency for each system (logarithmic time
// axis, dots at p50 and p99), on the right the throughput of each system in
// rows converged cluster-wide per second.
func (r *Report) WriteSVG(w io.Writer) error {
	s := &svgWriter{w: bufio.NewWriter(w)}
	height := svgHeight + legendHeight*max(1, len(r.latencySeries()))
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	s.printf(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	title := fmt.Sprintf("Lattice %s: %d nodes, %s/%s, %d CPUs", r.Version, r.Nodes, r.Machine.OS, r.Machine.Arch, r.Machine.CPUs)
	if len(r.Machine.Load) > 0 {
		title += fmt.Sprintf(", load %.2f", r.Machine.Load[0])
	}
	if !r.Time.IsZero() {
		title += ", " + r.Time.Format("2006-01-02 15:04 MST")
	}
	s.text(svgWidth/2, 24, `text-anchor="middle" font-size="15" font-weight="bold"`, title)
	r.drawCDF(s)
	r.drawBars(s)
	s.printf("</svg>\n")
	if s.err != nil {
		return errors.Wrap(s.err, "write svg report")
	}
	return errors.Wrap(s.w.Flush(), "write svg report")
}

// drawCDF draws the latency panel.
func (r *Report) drawCDF(s *svgWriter) {
	s.text((cdfLeft+cdfRight)/2, 50, `text-anchor="middle" font-size="13"`, "end-to-end latency: commit in one system to visible in another")
	series := r.latencySeries()
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, sc := range series {
		for _, v := range sc.Latency.Raw {
			if v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	s.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n",
		cdfLeft, cdfTop, cdfRight-cdfLeft, cdfBottom-cdfTop)
	if len(series) == 0 || math.IsInf(lo, 1) {
		s.text((cdfLeft+cdfRight)/2, (cdfTop+cdfBottom)/2, `text-anchor="middle" fill="#666"`, "no latency samples")
		return
	}
	// A logarithmic axis from the decade below the fastest sample to the
	// one above the slowest: tails stay readable next to the median.
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	x := func(ms float64) float64 {
		ms = max(ms, math.Pow(10, d0))
		return cdfLeft + (math.Log10(ms)-d0)/(d1-d0)*(cdfRight-cdfLeft)
	}
	y := func(p float64) float64 { return cdfBottom - p*(cdfBottom-cdfTop) }

	// Grid and ticks.
	for d := d0; d <= d1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if d == d1 && m > 1 {
				break
			}
			xv := x(v)
			s.line(xv, cdfTop, xv, cdfBottom, `stroke="#eee"`)
			s.line(xv, cdfBottom, xv, cdfBottom+4, `stroke="#666"`)
			s.text(xv, cdfBottom+17, `text-anchor="middle"`, FormatValue(v))
		}
	}
	for _, p := range []float64{0, 0.25, 0.5, 0.75, 0.9, 1} {
		yv := y(p)
		s.line(cdfLeft, yv, cdfRight, yv, `stroke="#eee"`)
		s.line(cdfLeft-4, yv, cdfLeft, yv, `stroke="#666"`)
		s.text(cdfLeft-7, yv+4, `text-anchor="end"`, FormatValue(p))
	}
	s.text((cdfLeft+cdfRight)/2, cdfBottom+36, `text-anchor="middle"`, "milliseconds (log scale)")
	s.text(18, (cdfTop+cdfBottom)/2, fmt.Sprintf(`text-anchor="middle" transform="rotate(-90 18 %.1f)"`, (cdfTop+cdfBottom)/2), "fraction of changes visible")

	for i, sc := range series {
		color := colorOf(sc.System, i)
		ms := slices.Clone(sc.Latency.Raw)
		slices.Sort(ms)
		// The empirical CDF as steps: at the k-th fastest sample the
		// fraction rises from k/n to (k+1)/n.
		var b strings.Builder
		fmt.Fprintf(&b, "M%.1f,%.1f", x(ms[0]), y(0))
		n := float64(len(ms))
		for k, v := range ms {
			fmt.Fprintf(&b, " H%.1f V%.1f", x(v), y(float64(k+1)/n))
		}
		s.printf(`<path class="cdf" d="%s" fill="none" stroke="%s" stroke-width="1.8"/>`+"\n", b.String(), color)
		l := sc.Latency
		for _, m := range []struct {
			p, v float64
		}{{0.5, l.P50ms}, {0.99, l.P99ms}} {
			s.printf(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x(m.v), y(m.p), color)
		}
		// The legend goes below the axis, never over a curve.
		ly := cdfBottom + 60 + float64(i)*legendHeight
		s.line(cdfLeft, ly-4, cdfLeft+22, ly-4, fmt.Sprintf(`stroke="%s" stroke-width="3"`, color))
		s.text(cdfLeft+28, ly, "", fmt.Sprintf("%s: p50 %s ms, p99 %s ms (%d samples)", sc.System, FormatValue(l.P50ms), FormatValue(l.P99ms), l.Samples))
	}
}

// latencySeries returns the scenarios with latency samples.
func (r *Report) latencySeries() []Scenario {
	var out []Scenario
	for _, sc := range r.Scenarios {
		if sc.Latency != nil && len(sc.Latency.Raw) > 0 {
			out = append(out, sc)
		}
	}
	return out
}

// drawBars draws the throughput panel.
func (r *Report) drawBars(s *svgWriter) {
	s.text((barLeft+barRight)/2, 50, `text-anchor="middle" font-size="13"`, "throughput: rows converged cluster-wide")
	var series []Scenario
	top := 0.0
	for _, sc := range r.Scenarios {
		if sc.Throughput != nil {
			series = append(series, sc)
			top = max(top, sc.Throughput.RowsPerSecond)
		}
	}
	s.line(barLeft, barBottom, barRight, barBottom, `stroke="#999"`)
	s.line(barLeft, barTop, barLeft, barBottom, `stroke="#999"`)
	if len(series) == 0 {
		s.text((barLeft+barRight)/2, (barTop+barBottom)/2, `text-anchor="middle" fill="#666"`, "no throughput measured")
		return
	}
	// Ticks at a round step, about four of them, with room for the label
	// above the highest bar.
	step := niceCeil(top * 1.1 / 4)
	top = math.Ceil(top*1.1/step) * step
	y := func(v float64) float64 { return barBottom - v/top*(barBottom-barTop) }
	for v := 0.0; v <= top+step/2; v += step {
		s.line(barLeft, y(v), barRight, y(v), `stroke="#eee"`)
		s.line(barLeft-4, y(v), barLeft, y(v), `stroke="#666"`)
		s.text(barLeft-7, y(v)+4, `text-anchor="end"`, FormatValue(v))
	}
	s.text(barLeft-52, (barTop+barBottom)/2, fmt.Sprintf(`text-anchor="middle" transform="rotate(-90 %.1f %.1f)"`, barLeft-52, (barTop+barBottom)/2), "rows per second")
	slot := (barRight - barLeft) / float64(len(series))
	width := min(slot*0.6, 70)
	for i, sc := range series {
		t := sc.Throughput
		cx := barLeft + slot*(float64(i)+0.5)
		yv := y(t.RowsPerSecond)
		s.printf(`<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n",
			cx-width/2, yv, width, barBottom-yv, colorOf(sc.System, i))
		s.text(cx, yv-6, `text-anchor="middle"`, FormatValue(t.RowsPerSecond))
		s.text(cx, barBottom+17, `text-anchor="middle"`, sc.System)
		s.text(cx, barBottom+32, `text-anchor="middle" fill="#666" font-size="10"`, fmt.Sprintf("%s rows in %ss", FormatValue(float64(t.Rows)), FormatValue(t.TotalSeconds)))
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
