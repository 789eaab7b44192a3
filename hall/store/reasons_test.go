package store_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// reason is the reason record seq of device d1 epoch e1 gives for rating
// of seq for.
func reason(seq, forSeq uint64, code, label string) store.Rating {
	p := record.Press{V: 1, Kind: record.KindReason, ID: record.PressID("d1", "e1", seq), Device: "d1", Hall: "h1",
		Counter: "W05", Epoch: "e1", Seq: seq, Button: 2, For: record.PressID("d1", "e1", forSeq),
		Reason:    &record.ReasonRef{Code: code, Label: label},
		Ticket:    &record.TicketRef{ID: "A1", State: record.Done, Staff: "S1"},
		PressedAt: "2026-11-24T09:15:05.123+08:00", ClockSynced: true}
	raw, _ := json.Marshal(p)
	return store.Rating{Press: p, Raw: raw, PressedMS: 1795914905123, ServiceDay: "2026-11-24", Verified: true, StoredMS: 1000}
}

// bad is a counted 差评 that waits for its reason until dueMS, with its
// follow-up.
func bad(seq uint64, ticket string, dueMS int64) store.Rating {
	r := rating("d1", "e1", seq, 2, ticket)
	r.ReasonDueMS = dueMS
	r.Followup = &store.Followup{Hall: "h1", Counter: "W05", Ticket: ticket, Staff: "S1", Satisfaction: 2,
		PressedAt: r.PressedAt, Due: "2026-12-03", CreatedMS: 1, Alert: []byte(`{"v":1,"kind":"bad_rating"}`), ReasonDueMS: dueMS}
	return r
}

func saveRs(t *testing.T, db *store.DB, rs ...store.Rating) store.Saved {
	t.Helper()
	s, err := db.SaveBatch(context.Background(), store.Batch{Ratings: rs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func joinable(t *testing.T, db *store.DB, nowMS int64) []store.WaitingRating {
	t.Helper()
	var out []store.WaitingRating
	err := db.Join(context.Background(), func(j *store.JoinTx) error {
		var err error
		out, err = j.Joinable(10, nowMS)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReasonAttachesEitherOrder(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r1 := bad(1, "A1", 5000)
		r1.Ticket.ProjectNo = "P1" // joinable without a case
		// The rating first, then its reason.
		saveRs(t, db, r1)
		if w := joinable(t, db, 4999); len(w) != 0 {
			t.Fatalf("a 差评 joinable before its reason or its wait: %+v", w)
		}
		if al, _ := db.ClaimAlerts(ctx, 4999, 5999, 10); len(al) != 0 {
			t.Fatalf("alert claimed before its reason or its wait: %+v", al)
		}
		s := saveRs(t, db, reason(2, 1, "speed", "办事效率"))
		if len(s.Reasons) != 1 || s.Reasons[0].RatingID != "d1:e1:1" || s.Reasons[0].Code != "speed" {
			t.Fatalf("attached %+v", s.Reasons)
		}
		w := joinable(t, db, 10)
		if len(w) != 1 || w[0].ID != "d1:e1:1" || w[0].ReasonCode != "speed" || w[0].ReasonText != "办事效率" {
			t.Fatalf("joinable with its reason: %+v", w)
		}
		al, err := db.ClaimAlerts(ctx, 10, 1000, 10)
		if err != nil || len(al) != 1 {
			t.Fatalf("alerts %+v %v", al, err)
		}
		if got := string(al[0].AlertMessage()); got != `{"v":1,"kind":"bad_rating","reasonCode":"speed","reasonText":"办事效率"}` {
			t.Fatalf("alert %s", got)
		}
		fs, err := db.Followups(ctx, true, 0)
		if err != nil || len(fs) != 1 || fs[0].ReasonCode != "speed" || fs[0].ReasonText != "办事效率" {
			t.Fatalf("follow-ups %+v %v", fs, err)
		}

		// The reason first (another collector stored it), then the rating.
		saveRs(t, db, reason(4, 3, "attitude", "服务态度"))
		s = saveRs(t, db, bad(3, "A2", 5000))
		if len(s.Reasons) != 1 || s.Reasons[0].RatingID != "d1:e1:3" || s.Reasons[0].ReasonID != "d1:e1:4" {
			t.Fatalf("attached %+v", s.Reasons)
		}
		// A second reason for the same rating changes nothing.
		if s := saveRs(t, db, reason(5, 3, "other", "其他")); len(s.Reasons) != 0 {
			t.Fatalf("a second reason attached: %+v", s.Reasons)
		}
		// Without a reason the wait ends by itself.
		saveRs(t, db, bad(6, "A3", 5000))
		if w := joinable(t, db, 4999); len(w) != 1 {
			t.Fatalf("joinable before the wait ends: %+v", w)
		}

		// Reason records are neither ratings on the tiles nor in reports.
		fig, err := db.Figures(ctx, store.FigureQuery{Hall: "h1", FromMS: 0, ToMS: 1 << 62, Last: true})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range fig.Rows {
			n += r.N
		}
		if n != 3 || fig.LastPress["W05"].ID != "" && fig.LastPress["W05"].ID != "d1:e1:6" {
			t.Fatalf("figures %+v", fig)
		}
		counts, err := db.ReasonCounts(ctx, "h1", 0, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"speed": 1, "attitude": 1}
		if len(counts) != 2 {
			t.Fatalf("reason counts %+v", counts)
		}
		for _, c := range counts {
			if c.N != want[c.Code] || c.Counter != "W05" || c.Staff != "S1" {
				t.Fatalf("reason counts %+v", counts)
			}
		}
	})
}

// A reason the hall does not accept (flagged) attaches to nothing.
func TestHeldReasonAttachesToNothing(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		saveRs(t, db, bad(1, "A1", 5000))
		r := reason(2, 1, "speed", "办事效率")
		r.Hold, r.Trust = true, store.TrustFlagged
		if s := saveRs(t, db, r); len(s.Reasons) != 0 {
			t.Fatalf("a flagged reason attached: %+v", s.Reasons)
		}
	})
}
