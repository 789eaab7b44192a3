package report

import (
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
