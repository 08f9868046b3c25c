package console

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// chart is a bar chart of a histogram, drawn as SVG by the templates; the
// geometry is computed here so that the templates only place numbers.
type chart struct {
	Width, Height float64
	Bars          []bar
	// Axis lines and labels.
	Left, Bottom, Top, Right float64
	YTicks                   []tick
	Total                    uint64
	P50, P99                 string
}

type bar struct {
	X, Y, W, H float64
	Count      uint64
	Label      string // the bucket's upper bound
	LabelX     float64
}

type tick struct {
	Y     float64
	Label string
}

// metricFamilies reads the gatherer into a map by name.
func (c *Console) metricFamilies() map[string]*dto.MetricFamily {
	out := map[string]*dto.MetricFamily{}
	if c.cfg.Metrics == nil {
		return out
	}
	mfs, err := c.cfg.Metrics.Gather()
	if err != nil {
		c.log.Debug("gather metrics", "err", err)
	}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// durationLabel writes seconds as a short duration: 500µs, 2ms, 1.5s.
func durationLabel(s float64) string {
	switch {
	case math.IsInf(s, 1):
		return "more"
	case s < 1e-3:
		return strconv.FormatFloat(s*1e6, 'g', 3, 64) + "µs"
	case s < 1:
		return strconv.FormatFloat(s*1e3, 'g', 3, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'g', 3, 64) + "s"
}

// bucketCount is one histogram bucket: its upper bound and the
// observations in it alone.
type bucketCount struct {
	upper float64
	n     uint64
}

// histogramChart draws the first series of a histogram family: one bar per
// bucket with the number of observations in it (not cumulative). It
// returns nil when the family is absent.
func histogramChart(mf *dto.MetricFamily) *chart {
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) == 0 {
		return nil
	}
	h := mf.GetMetric()[0].GetHistogram()
	buckets := append([]*dto.Bucket(nil), h.GetBucket()...)
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].GetUpperBound() < buckets[j].GetUpperBound() })
	var bs []bucketCount
	var prev uint64
	for _, bk := range buckets {
		bs = append(bs, bucketCount{bk.GetUpperBound(), bk.GetCumulativeCount() - prev})
		prev = bk.GetCumulativeCount()
	}
	if total := h.GetSampleCount(); total >= prev {
		bs = append(bs, bucketCount{math.Inf(1), total - prev})
	}
	c := &chart{Width: 760, Height: 260, Left: 56, Right: 750, Top: 16, Bottom: 210, Total: h.GetSampleCount()}
	var most uint64 = 1
	for _, x := range bs {
		most = max(most, x.n)
	}
	// Four gridlines at whole, distinct counts: the axis tops at the next
	// multiple of 4 steps above the tallest bar.
	step := (most + 3) / 4
	most = step * 4
	slot := (c.Right - c.Left) / float64(len(bs))
	for i, x := range bs {
		hgt := (c.Bottom - c.Top) * float64(x.n) / float64(most)
		bx := c.Left + float64(i)*slot + slot*0.1
		c.Bars = append(c.Bars, bar{X: bx, Y: c.Bottom - hgt, W: slot * 0.8, H: hgt, Count: x.n,
			Label: durationLabel(x.upper), LabelX: bx + slot*0.4})
	}
	for i := uint64(0); i <= 4; i++ {
		c.YTicks = append(c.YTicks, tick{Y: c.Bottom - (c.Bottom-c.Top)*float64(i)/4, Label: strconv.FormatUint(i*step, 10)})
	}
	c.P50, c.P99 = quantile(bs, h.GetSampleCount(), 0.5), quantile(bs, h.GetSampleCount(), 0.99)
	return c
}

// quantile returns the upper bound of the bucket that holds quantile q, as
// "<= 5ms" (a histogram knows no more), or "" without observations.
func quantile(bs []bucketCount, total uint64, q float64) string {
	if total == 0 {
		return ""
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for _, x := range bs {
		seen += x.n
		if seen >= want {
			if math.IsInf(x.upper, 1) {
				return fmt.Sprintf("> %s", durationLabel(bs[len(bs)-2].upper))
			}
			return "≤ " + durationLabel(x.upper)
		}
	}
	return ""
}

// metricRow is one series of a metric family, for the drift page.
type metricRow struct {
	Name   string
	Labels string
	Value  string
	Help   string
}

// metricRows lists the series of the families whose names start with one
// of prefixes.
func metricRows(mfs map[string]*dto.MetricFamily, prefixes ...string) []metricRow {
	var names []string
	for n := range mfs {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				names = append(names, n)
				break
			}
		}
	}
	sort.Strings(names)
	var out []metricRow
	for _, n := range names {
		mf := mfs[n]
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v string
			switch {
			case m.Gauge != nil:
				v = number(m.GetGauge().GetValue())
			case m.Counter != nil:
				v = number(m.GetCounter().GetValue())
			case m.Untyped != nil:
				v = number(m.GetUntyped().GetValue())
			case m.Histogram != nil:
				v = fmt.Sprintf("%d observations, sum %g", m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum())
			case m.Summary != nil:
				v = fmt.Sprintf("%d observations, sum %g", m.GetSummary().GetSampleCount(), m.GetSummary().GetSampleSum())
			}
			out = append(out, metricRow{Name: n, Labels: strings.Join(labels, ", "), Value: v, Help: mf.GetHelp()})
		}
	}
	return out
}

// number writes a metric value: whole numbers (counts, Unix times) in full,
// others with the digits they need.
func number(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
