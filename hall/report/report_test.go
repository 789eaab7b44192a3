package report

import (
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
)

func TestMake(t *testing.T) {
	c := func(counter, staff string, sat int, class string) store.FigureRow {
		return store.FigureRow{Counter: counter, Staff: staff, Satisfaction: sat, Class: class, N: 1}
	}
	rows := []store.FigureRow{
		c("W01", "S1", 5, store.ClassRated), c("W01", "S1", 4, store.ClassRated), c("W01", "S1", 1, store.ClassRated),
		c("W02", "S2", 3, store.ClassRated), c("W02", "S2", 5, store.ClassUnmatched), c("W02", "S2", 5, store.ClassDuplicateCase),
		c("W02", "S2", 1, store.ClassNotCounted),
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
	rows := []store.FigureRow{}
	for i, staff := range []string{`=HYPERLINK("http://x.example","y")`, "@SUM(A1:A9)", "+1", "-1", "\tx", "\rx", "S017", "张三"} {
		rows = append(rows, store.FigureRow{Counter: "W01", Staff: staff, Satisfaction: 1 + i%5, Class: store.ClassRated, N: 1})
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

func TestReasonsCSV(t *testing.T) {
	// Codes tie at two each, so they come in the order of their code.
	r := Report{Month: "2026-11", Reasons: MakeReasons([]store.ReasonCount{
		{Counter: "W01", Staff: "S1", Code: "wait", Label: "等候太久", N: 2},
		{Counter: "W02", Staff: "=S2", Code: "attitude", Label: "态度不好", N: 1},
		{Counter: "W01", Staff: "S1", Code: "attitude", Label: "态度不好", N: 1},
	})}
	var b strings.Builder
	if err := r.WriteReasonsCSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(recs)
	want := "[[month group key code label n] " +
		"[2026-11 staff S1 attitude 态度不好 1] [2026-11 staff S1 wait 等候太久 2] [2026-11 staff '=S2 attitude 态度不好 1] " +
		"[2026-11 counter W01 attitude 态度不好 1] [2026-11 counter W01 wait 等候太久 2] [2026-11 counter W02 attitude 态度不好 1] " +
		"[2026-11 total total attitude 态度不好 2] [2026-11 total total wait 等候太久 2]]"
	if got != want {
		t.Fatalf("reasons CSV\n got %s\nwant %s", got, want)
	}
}
