package web

import (
	"fmt"
	"strconv"
	"strings"
)

// The charts are SVG drawn on the server: no chart library, no script.
// Colours come from the stylesheet's l1..l5 classes, so screen and print
// agree.

// Bars is a horizontal stacked bar chart of the levels, one bar per key.
type Bars struct {
	Width, Height int
	LabelW        int
	Rows          []BarRow
	// Legend is the level names, 5 first.
	Legend []LegendItem
	Empty  bool
}

// BarRow is one bar.
type BarRow struct {
	Label string
	Y     int
	TextY int
	Total int64
	TotX  float64
	Segs  []Seg
}

// Seg is one level's part of a bar.
type Seg struct {
	X, W  float64
	Class string
	Title string
}

// LegendItem names a level's colour.
type LegendItem struct {
	X     int
	Class string
	Name  string
}

const (
	barH    = 22
	barGap  = 8
	barTop  = 28
	chartW  = 560
	labelW  = 110
	totalsW = 46
)

// stackedBars draws levels (index 0 = level 1) per key, in the order given.
func stackedBars(keys []string, levels map[string][5]int64, t dict) Bars {
	b := Bars{Width: chartW, LabelW: labelW}
	var top int64
	for _, k := range keys {
		top = max(top, sum(levels[k]))
	}
	for i, lv := range []int{5, 4, 3, 2, 1} {
		b.Legend = append(b.Legend, LegendItem{X: labelW + i*((chartW-labelW)/5), Class: fmt.Sprintf("l%d", lv), Name: t[fmt.Sprintf("l%d", lv)]})
	}
	span := float64(chartW - labelW - totalsW)
	for i, k := range keys {
		l := levels[k]
		y := barTop + i*(barH+barGap)
		row := BarRow{Label: shorten(k, 12), Y: y, TextY: y + barH/2 + 5, Total: sum(l)}
		x := float64(labelW)
		for lv := 5; lv >= 1; lv-- {
			n := l[lv-1]
			if n == 0 || top == 0 {
				continue
			}
			w := span * float64(n) / float64(top)
			row.Segs = append(row.Segs, Seg{X: round2(x), W: round2(w), Class: fmt.Sprintf("l%d", lv),
				Title: fmt.Sprintf("%s %s: %d", k, t[fmt.Sprintf("l%d", lv)], n)})
			x += w
		}
		row.TotX = round2(x + 6)
		b.Rows = append(b.Rows, row)
	}
	b.Height = barTop + len(keys)*(barH+barGap) + 4
	b.Empty = top == 0
	return b
}

func sum(l [5]int64) int64 {
	var n int64
	for _, c := range l {
		n += c
	}
	return n
}

func round2(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 2, 64), 64)
	return v
}

// Trend is a line of the daily 好评率 over a month.
type Trend struct {
	Width, Height int
	Left, Right   int
	Top, Bottom   int
	Points        string
	Dots          []Dot
	Grid          []GridLine
	Days          []DayTick
	Empty         bool
}

// Dot is one day with ratings.
type Dot struct {
	X, Y  float64
	Title string
}

// GridLine is a horizontal line at a rate.
type GridLine struct {
	Y     float64
	Label string
}

// DayTick labels a day on the x axis.
type DayTick struct {
	X     float64
	Label string
}

// trend draws rates[d] (0..1, or -1 for a day without ratings) for days
// 1..len(rates).
func trend(rates []float64, counts []int64, t dict) Trend {
	tr := Trend{Width: chartW, Height: 220, Left: 44, Right: chartW - 10, Top: 12, Bottom: 190, Empty: true}
	n := len(rates)
	if n == 0 {
		return tr
	}
	xOf := func(d int) float64 {
		if n == 1 {
			return float64(tr.Left)
		}
		return round2(float64(tr.Left) + float64(d)*float64(tr.Right-tr.Left)/float64(n-1))
	}
	yOf := func(r float64) float64 { return round2(float64(tr.Bottom) - r*float64(tr.Bottom-tr.Top)) }
	for _, r := range []float64{0, 0.5, 0.8, 1} {
		tr.Grid = append(tr.Grid, GridLine{Y: yOf(r), Label: strconv.Itoa(int(r*100)) + "%"})
	}
	var pts []string
	for d, r := range rates {
		if d == 0 || (d+1)%5 == 0 || d == n-1 {
			tr.Days = append(tr.Days, DayTick{X: xOf(d), Label: strconv.Itoa(d + 1)})
		}
		if r < 0 {
			continue
		}
		tr.Empty = false
		x, y := xOf(d), yOf(r)
		pts = append(pts, fmt.Sprintf("%g,%g", x, y))
		tr.Dots = append(tr.Dots, Dot{X: x, Y: y, Title: fmt.Sprintf("%d: %s %s (%d)", d+1, t["good_rate"], pct(r), counts[d])})
	}
	tr.Points = strings.Join(pts, " ")
	return tr
}

// pct formats a share as a percentage with one decimal.
func pct(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

// score shows a satisfaction score with two decimals; the report's JSON
// and CSV keep it at full precision.
func score(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) }

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
