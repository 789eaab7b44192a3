package report

import (
	"testing"

	"github.com/hallrate/hallrate/hall/store"
)

// Records that failed verification, and counted ratings held back as
// unverified, are counted apart and never in the levels or the rates.
func TestMakeCountsVerificationApart(t *testing.T) {
	rows := []store.FigureRow{
		{Counter: "W01", Staff: "S1", Satisfaction: 5, Class: store.ClassRated, N: 1},
		{Counter: "W01", Staff: "S1", Satisfaction: 1, Class: store.ClassFailedVerification, N: 2},
		{Counter: "W01", Staff: "S1", Satisfaction: 2, Class: store.ClassUnverified, N: 1},
	}
	r := Make("2026-11", "h1", rows, DefaultPoints())
	if r.Total.Rated != 1 || r.Total.Levels != [5]int64{0, 0, 0, 0, 1} || r.Total.FailedVerification != 2 ||
		r.Total.Unverified != 1 || r.Total.Flagged != 0 || r.Total.BadRate != 0 {
		t.Fatalf("total %+v", r.Total)
	}
}
