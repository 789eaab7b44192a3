// Package report makes the monthly satisfaction report of a hall: per staff
// member and per counter, the counted ratings of each level, the rates the
// 好差评 system asks for and a satisfaction score, worst first.
package report

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallrate/hallrate/hall/store"
)

// DefaultPoints returns the score points of levels 1 to 5 (非常不满意 ...
// 非常满意): 0, 40, 60, 80, 100.
func DefaultPoints() [5]float64 { return [5]float64{0, 40, 60, 80, 100} }

// Row is one staff member's or one counter's month.
type Row struct {
	Key string `json:"key"`
	// Levels counts the rated ratings by satisfaction, index 0 = level 1.
	Levels [5]int64 `json:"levels"`
	// Rated are the counted ratings that count toward the rates: joined
	// or waiting for their case.
	Rated int64 `json:"rated"`
	// GoodRate (好评率) is the share of levels 4 and 5.
	GoodRate float64 `json:"good_rate"`
	// BadRate (差评率) is the share of levels 1 and 2.
	BadRate float64 `json:"bad_rate"`
	// NotSatisfiedRate (不满意率) is the share below 满意: levels 1 to 3.
	NotSatisfiedRate float64 `json:"not_satisfied_rate"`
	// Score is the mean of the levels' points.
	Score float64 `json:"score"`
	// Unmatched are counted ratings no case joined in time; Duplicate are
	// second ratings of a case (duplicate_case); Flagged are repeat, late
	// and no_ticket presses. None of them is in Levels.
	Unmatched int64 `json:"unmatched"`
	Duplicate int64 `json:"duplicate_case"`
	Flagged   int64 `json:"flagged"`
	// FailedVerification are records of any disposition that failed
	// verification (bad signature, broken chain, wrong counter...);
	// Unverified are counted ratings kept out because the hall holds no
	// trusted key for their device. Neither is in Levels or Flagged.
	FailedVerification int64 `json:"failed_verification"`
	Unverified         int64 `json:"unverified"`
}

// Report is a month's report.
type Report struct {
	Month     string     `json:"month"`
	Hall      string     `json:"hall"`
	Total     Row        `json:"total"`
	ByStaff   []Row      `json:"by_staff"`
	ByCounter []Row      `json:"by_counter"`
	Points    [5]float64 `json:"points"`
	// Reasons is the distribution of the reasons given for 差评.
	Reasons Reasons `json:"reasons"`
}

// Month returns the start and end of a month "2026-11" in loc.
func Month(month string, loc *time.Location) (time.Time, time.Time, error) {
	t, err := time.ParseInLocation("2006-01", month, loc)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("report: month %q: want YYYY-MM", month)
	}
	return t, t.AddDate(0, 1, 0), nil
}

// Make aggregates a month's figures ([store.DB.Figures]).
func Make(month, hall string, rows []store.FigureRow, points [5]float64) Report {
	r := Report{Month: month, Hall: hall, Total: Row{Key: "total"}, Points: points}
	staff, counters := map[string]*Row{}, map[string]*Row{}
	get := func(m map[string]*Row, k string) *Row {
		if k == "" {
			k = "-"
		}
		if m[k] == nil {
			m[k] = &Row{Key: k}
		}
		return m[k]
	}
	for _, x := range rows {
		for _, row := range []*Row{&r.Total, get(staff, x.Staff), get(counters, x.Counter)} {
			add(row, x)
		}
	}
	finish(&r.Total, points)
	r.ByStaff = ranked(staff, points)
	r.ByCounter = ranked(counters, points)
	return r
}

// add counts x into row by its class: the store decides what counts.
func add(row *Row, x store.FigureRow) {
	switch x.Class {
	case store.ClassFailedVerification:
		row.FailedVerification += x.N
	case store.ClassUnverified:
		row.Unverified += x.N
	case store.ClassNotCounted:
		row.Flagged += x.N
	case store.ClassUnmatched:
		row.Unmatched += x.N
	case store.ClassDuplicateCase:
		row.Duplicate += x.N
	case store.ClassRated:
		row.Levels[x.Satisfaction-1] += x.N
		row.Rated += x.N
	}
}

func finish(row *Row, points [5]float64) {
	if row.Rated == 0 {
		return
	}
	n := float64(row.Rated)
	l := row.Levels
	row.GoodRate = round(float64(l[3]+l[4]) / n)
	row.BadRate = round(float64(l[0]+l[1]) / n)
	row.NotSatisfiedRate = round(float64(l[0]+l[1]+l[2]) / n)
	var sum float64
	for i, c := range l {
		sum += float64(c) * points[i]
	}
	row.Score = round(sum / n)
}

func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 4, 64), 64)
	return v
}

// ranked sorts worst first: by 不满意率, then by volume, then by key.
func ranked(m map[string]*Row, points [5]float64) []Row {
	out := make([]Row, 0, len(m))
	for _, r := range m {
		finish(r, points)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(b.NotSatisfiedRate, a.NotSatisfiedRate), cmp.Compare(b.Rated, a.Rated), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// CSVHeader are the columns of [Report.WriteCSV].
var CSVHeader = []string{"month", "group", "key", "rated", "非常不满意", "不满意", "基本满意", "满意", "非常满意",
	"好评率", "差评率", "不满意率", "score", "unmatched", "duplicate_case", "flagged", "failed_verification", "unverified"}

// SafeCell returns a text cell of a CSV file made for spreadsheets: a cell
// that starts with =, +, -, @, tab or carriage return gets a leading ', so
// Excel and WPS show it as text instead of running it as a formula (the
// OWASP rule against CSV injection). Staff names come from outside.
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteCSV writes one line per staff member, then per counter, then the
// total.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	line := func(group string, x Row) error {
		rec := []string{SafeCell(r.Month), SafeCell(group), SafeCell(x.Key), strconv.FormatInt(x.Rated, 10)}
		for _, c := range x.Levels {
			rec = append(rec, strconv.FormatInt(c, 10))
		}
		rec = append(rec, f(x.GoodRate), f(x.BadRate), f(x.NotSatisfiedRate), f(x.Score),
			strconv.FormatInt(x.Unmatched, 10), strconv.FormatInt(x.Duplicate, 10), strconv.FormatInt(x.Flagged, 10),
			strconv.FormatInt(x.FailedVerification, 10), strconv.FormatInt(x.Unverified, 10))
		return cw.Write(rec)
	}
	for _, x := range r.ByStaff {
		if err := line("staff", x); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	for _, x := range r.ByCounter {
		if err := line("counter", x); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if err := line("total", r.Total); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
