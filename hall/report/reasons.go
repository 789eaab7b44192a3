package report

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/hallrate/hallrate/hall/store"
)

// Reasons is the month's 不满意原因分布: how many 差评 carried each reason,
// in total, per counter and per staff member.
type Reasons struct {
	// Codes are the reasons given this month, most frequent first.
	Codes     []ReasonCode `json:"codes"`
	Total     ReasonRow    `json:"total"`
	ByCounter []ReasonRow  `json:"by_counter"`
	ByStaff   []ReasonRow  `json:"by_staff"`
}

// ReasonCode is one reason, as the terminals offer it.
type ReasonCode struct {
	Code  string `json:"code"`
	Label string `json:"label"`
}

// ReasonRow counts the reasons of one counter or staff member.
type ReasonRow struct {
	Key string `json:"key"`
	// Counts is aligned with [Reasons.Codes].
	Counts []int64 `json:"counts"`
	N      int64   `json:"n"`
}

// MakeReasons arranges the store's reason counts of a month.
func MakeReasons(counts []store.ReasonCount) Reasons {
	totals := map[string]int64{}
	labels := map[string]string{}
	for _, c := range counts {
		totals[c.Code] += c.N
		labels[c.Code] = c.Label
	}
	var r Reasons
	for code := range totals {
		r.Codes = append(r.Codes, ReasonCode{Code: code, Label: labels[code]})
	}
	slices.SortFunc(r.Codes, func(a, b ReasonCode) int {
		return cmp.Or(cmp.Compare(totals[b.Code], totals[a.Code]), cmp.Compare(a.Code, b.Code))
	})
	index := map[string]int{}
	for i, c := range r.Codes {
		index[c.Code] = i
	}
	r.Total = ReasonRow{Key: "total", Counts: make([]int64, len(r.Codes))}
	staff, counters := map[string]*ReasonRow{}, map[string]*ReasonRow{}
	get := func(m map[string]*ReasonRow, k string) *ReasonRow {
		if k == "" {
			k = "-"
		}
		if m[k] == nil {
			m[k] = &ReasonRow{Key: k, Counts: make([]int64, len(r.Codes))}
		}
		return m[k]
	}
	for _, c := range counts {
		for _, row := range []*ReasonRow{&r.Total, get(staff, c.Staff), get(counters, c.Counter)} {
			row.Counts[index[c.Code]] += c.N
			row.N += c.N
		}
	}
	r.ByCounter, r.ByStaff = sortedReasons(counters), sortedReasons(staff)
	return r
}

// sortedReasons orders rows by how many reasons they have, most first.
func sortedReasons(m map[string]*ReasonRow) []ReasonRow {
	out := make([]ReasonRow, 0, len(m))
	for _, r := range m {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b ReasonRow) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Key, b.Key)) })
	return out
}

// ReasonCSVHeader are the columns of [Report.WriteReasonsCSV].
var ReasonCSVHeader = []string{"month", "group", "key", "code", "label", "n"}

// WriteReasonsCSV writes the month's reasons in long form, one line per
// staff member, counter or total and reason given, so a spreadsheet's
// pivot table can arrange them: staff first, then counters, then the
// total, each in the order of [Reasons].
func (r Report) WriteReasonsCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ReasonCSVHeader); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rs := r.Reasons
	groups := []struct {
		name string
		rows []ReasonRow
	}{{"staff", rs.ByStaff}, {"counter", rs.ByCounter}, {"total", []ReasonRow{rs.Total}}}
	for _, g := range groups {
		for _, row := range g.rows {
			for i, n := range row.Counts {
				if n == 0 {
					continue
				}
				c := rs.Codes[i]
				rec := []string{SafeCell(r.Month), g.name, SafeCell(row.Key), SafeCell(c.Code), SafeCell(c.Label), strconv.FormatInt(n, 10)}
				if err := cw.Write(rec); err != nil {
					return fmt.Errorf("report: %w", err)
				}
			}
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
