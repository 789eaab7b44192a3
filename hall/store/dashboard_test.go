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
		counts, err := db.LevelCounts(ctx, "h1", 0, r3.PressedMS+1)
		if err != nil {
			t.Fatal(err)
		}
		var n, unsynced, unverified int64
		for _, c := range counts {
			n += c.N
			unsynced += c.Unsynced
			unverified += c.Unverified
			if c.Staff != "S1" || c.Day != "2026-11-24" || c.Disposition != "counted" || c.JoinState != store.Waiting {
				t.Errorf("count %+v", c)
			}
		}
		if len(counts) != 4 || n != 4 || unsynced != 1 || unverified != 1 {
			t.Fatalf("counts %+v", counts)
		}
		if c, err := db.LevelCounts(ctx, "h2", 0, r3.PressedMS+1); err != nil || len(c) != 0 {
			t.Fatalf("other hall: %v %v", c, err)
		}
		latest, err := db.LatestRatings(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if len(latest) != 2 || latest[0].ID != r3.ID || latest[0].ClockSynced || latest[0].Verified || latest[1].Counter != "W06" {
			t.Fatalf("latest %+v", latest)
		}
		un, err := db.UnverifiedRatings(ctx, "h1", 10)
		if err != nil || len(un) != 1 || un[0].ID != r3.ID {
			t.Fatalf("unverified %+v %v", un, err)
		}
	})
}
