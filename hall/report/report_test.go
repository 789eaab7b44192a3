package report

import (
	"encoding/csv"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
)

func TestMake(t *testing.T) {
	c := func(counter, staff string, sat int, join string) store.ReportRow {
		return store.ReportRow{Counter: counter, Staff: staff, Satisfaction: sat, Disposition: "counted", JoinState: join}
	}
	rows := []store.ReportRow{
		c("W01", "S1", 5, store.Joined), c("W01", "S1", 4, store.Joined), c("W01", "S1", 1, store.Waiting),
		c("W02", "S2", 3, store.Joined), c("W02", "S2", 5, store.Unmatched), c("W02", "S2", 5, store.DuplicateCase),
		{Counter: "W02", Staff: "S2", Satisfaction: 1, Disposition: "late"},
	}
	r := Make("2026-11", "h1", rows, DefaultPoints())
	if r.ByStaff[0].Key != "S2" || r.ByStaff[0].NotSatisfiedRate != 1 || r.ByStaff[0].Unmatched != 1 ||
		r.ByStaff[0].Duplicate != 1 || r.ByStaff[0].Flagged != 1 || r.ByStaff[0].Rated != 1 {
		t.Fatalf("worst staff %+v", r.ByStaff[0])
	}
	s1 := r.ByStaff[1]
	if s1.Rated != 3 || s1.GoodRate != 0.6667 || s1.BadRate != 0.3333 || s1.Score != 60 {
		t.Fatalf("S1 %+v", s1)
	}
	if r.Total.Rated != 4 || len(r.ByCounter) != 2 {
		t.Fatalf("total %+v", r.Total)
	}
	var b strings.Builder
	if err := r.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 6 {
		t.Fatalf("csv has %d lines:\n%s", n, b.String())
	}
}

func TestCSVCellsAreNotFormulas(t *testing.T) {
	rows := []store.ReportRow{}
	for i, staff := range []string{`=HYPERLINK("http://x.example","y")`, "@SUM(A1:A9)", "+1", "-1", "\tx", "\rx", "S017", "张三"} {
		rows = append(rows, store.ReportRow{Counter: "W01", Staff: staff, Satisfaction: 1 + i%5, Disposition: "counted",
			JoinState: store.Joined})
	}
	var b strings.Builder
	if err := Make("2026-11", "h1", rows, DefaultPoints()).WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, r := range recs[1:] {
		if r[1] == "staff" {
			keys[r[2]] = true
		}
	}
	for _, want := range []string{`'=HYPERLINK("http://x.example","y")`, "'@SUM(A1:A9)", "'+1", "'-1", "'\tx", "'\rx", "S017", "张三"} {
		if !keys[want] {
			t.Errorf("no staff cell %q in %v", want, keys)
		}
	}
}
