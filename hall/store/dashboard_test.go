package store_test

import (
	"context"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
)

func TestDashboardQueries(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r1, r2, r3 := rating("w05-a", "e1", 1, 5, "A001"), rating("w05-a", "e1", 2, 2, "A002"), rating("w05-a", "e1", 3, 4, "A003")
		r2.PressedMS++
		r3.PressedMS += 2
		r3.ClockSynced, r3.Verified = false, false
		other := rating("w06-a", "e1", 1, 3, "B001")
		other.Counter = "W06"
		if _, err := db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{r1, r2, r3, other}}); err != nil {
			t.Fatal(err)
		}
		fig, err := db.Figures(ctx, store.FigureQuery{Hall: "h1", FromMS: 0, ToMS: r3.PressedMS + 1, Last: true})
		if err != nil {
			t.Fatal(err)
		}
		var n, unsynced, unverified int64
		for _, c := range fig.Rows {
			n += c.N
			unsynced += c.Unsynced
			unverified += c.Unverified
			if c.Counter == "W05" && (c.Staff != "S1" || c.Day != "2026-11-24" || c.Class != store.ClassRated) {
				t.Errorf("row %+v", c)
			}
		}
		if len(fig.Rows) != 4 || n != 4 || unsynced != 1 || unverified != 1 {
			t.Fatalf("rows %+v", fig.Rows)
		}
		if f, err := db.Figures(ctx, store.FigureQuery{Hall: "h2", FromMS: 0, ToMS: r3.PressedMS + 1}); err != nil || len(f.Rows) != 0 {
			t.Fatalf("other hall: %v %v", f.Rows, err)
		}
		if l := fig.Last["W05"]; l.ID != r3.ID || l.ClockSynced || l.Verified || fig.Last["W06"].ID != other.ID || len(fig.LastPress) != 0 {
			t.Fatalf("last %+v, last press %+v", fig.Last, fig.LastPress)
		}
		un, err := db.UnverifiedRatings(ctx, "h1", 10)
		if err != nil || len(un) != 1 || un[0].ID != r3.ID {
			t.Fatalf("unverified %+v %v", un, err)
		}
	})
}
