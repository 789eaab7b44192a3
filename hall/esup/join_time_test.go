package esup

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// hallDay is 2026-11-24 in the hall's time zone.
func hallAt(h, m int) time.Time { return time.Date(2026, 11, 24, h, m, 0, 0, sh) }

// staffRating is a counted rating of the staff key at counter pressed at.
type staffRating struct {
	seq     uint64
	counter string
	staff   string
	at      time.Time
	synced  bool
	boot    string
	uptime  time.Duration
	source  string
}

func saveStaffRatings(t *testing.T, db *store.DB, stored time.Time, rs ...staffRating) {
	t.Helper()
	var batch []store.Rating
	for _, r := range rs {
		src := r.source
		if src == "" {
			src = record.SourceStaff
		}
		p := record.Press{V: 1, ID: record.PressID("d-"+r.counter, "e1", r.seq), Device: "d-" + r.counter, Hall: "h1",
			Counter: r.counter, Epoch: "e1", Seq: r.seq, Button: 1, Label: "x", Satisfaction: 5, Disposition: record.Counted,
			Ticket:    &record.TicketRef{ID: fmt.Sprintf("S-e1-%d", r.seq), State: record.Done, Staff: r.staff, Source: src},
			PressedAt: r.at.Format(record.TimeLayout), ClockSynced: r.synced, BootID: r.boot, UptimeMS: r.uptime.Milliseconds()}
		if src == record.SourceQueue {
			p.Ticket.ID = fmt.Sprintf("Q%d", r.seq)
		}
		batch = append(batch, store.Rating{Press: p, Raw: []byte("{}"), PressedMS: r.at.UnixMilli(),
			ServiceDay: r.at.Format(time.DateOnly), Verified: true, StoredMS: stored.UnixMilli()})
	}
	if _, err := db.SaveBatch(context.Background(), store.Batch{Ratings: batch}); err != nil {
		t.Fatal(err)
	}
}

// timeCase is a case of a counter without a ticket, accepted and finished
// at the given hall times.
func timeCase(no, counter, staff string, acc, fin time.Time) store.Case {
	a, f := acc.UnixMilli(), fin.UnixMilli()
	return store.Case{ProjectNo: no, Hall: "h1", Counter: counter, Staff: staff, TaskCode: "T",
		AcceptedAt: acc.Format(time.RFC3339), FinishedAt: fin.Format(time.RFC3339),
		AcceptedMS: &a, FinishedMS: &f, ServiceDay: acc.Format(time.DateOnly), ReceivedMS: 1}
}

func joinStates(t *testing.T, db *store.DB) map[string]store.StoredRating {
	t.Helper()
	rs, err := db.Ratings(context.Background(), store.RatingFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.StoredRating{}
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// TestJoinByCounterAndTime: ratings of the staff key join the one case of
// their counter whose span holds them; overlapping cases make a rating
// ambiguous until the duty manager assigns it, which makes exactly one
// evaluation; an untrusted clock never joins by time.
func TestJoinByCounterAndTime(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{"sqlite": openSQLite, "postgres": openPG} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			now := hallAt(10, 0)
			j := NewJoiner(JoinConfig{Store: db, Location: sh, MatchWindow: 30 * time.Minute, Sink: SinkTable,
				Clock: testenv.ClockFunc(func() time.Time { return now })})
			err := db.SaveCases(ctx, []store.Case{
				// W01: one case holds 09:12.
				timeCase("C-W01", "W01", "S1", hallAt(9, 0), hallAt(9, 10)),
				timeCase("C-W01-late", "W01", "S1", hallAt(9, 50), hallAt(9, 55)),
				// W02: two overlapping cases hold 09:20.
				timeCase("C-W02-a", "W02", "", hallAt(9, 0), hallAt(9, 15)),
				timeCase("C-W02-b", "W02", "", hallAt(9, 10), hallAt(9, 25)),
				// W03: the case is another staff member's.
				timeCase("C-W03", "W03", "S7", hallAt(9, 0), hallAt(9, 30)),
				// W04: for the clock that is not synchronised.
				timeCase("C-W04", "W04", "", hallAt(9, 0), hallAt(9, 30)),
			})
			if err != nil {
				t.Fatal(err)
			}
			saveStaffRatings(t, db, now,
				staffRating{seq: 1, counter: "W01", staff: "S1", at: hallAt(9, 12), synced: true},
				staffRating{seq: 1, counter: "W02", at: hallAt(9, 20), synced: true},
				staffRating{seq: 1, counter: "W03", staff: "S9", at: hallAt(9, 20), synced: true},
				// Pressed before the clock was set: 1970 by its wall clock.
				staffRating{seq: 1, counter: "W04", at: time.UnixMilli(90_000).In(sh), boot: "b1", uptime: 90 * time.Second},
			)
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			st := joinStates(t, db)
			if r := st["d-W01:e1:1"]; r.JoinState != store.Joined || r.CaseNo != "C-W01" {
				t.Fatalf("W01: %+v, want joined with C-W01", r)
			}
			if r := st["d-W02:e1:1"]; r.JoinState != store.Ambiguous {
				t.Fatalf("W02: %+v, want ambiguous", r)
			}
			for _, id := range []string{"d-W03:e1:1", "d-W04:e1:1"} {
				if r := st[id]; r.JoinState != store.Waiting {
					t.Fatalf("%s: %+v, want waiting", id, r)
				}
			}

			// The ambiguous rating is listed with its candidates.
			amb, err := db.Ratings(ctx, store.RatingFilter{JoinState: store.Ambiguous})
			if err != nil || len(amb) != 1 {
				t.Fatalf("ambiguous list: %v %+v", err, amb)
			}
			cands, err := db.Candidates(ctx, []string{amb[0].ID})
			if err != nil || len(cands[amb[0].ID]) != 2 || cands[amb[0].ID][0].ProjectNo != "C-W02-a" || cands[amb[0].ID][1].ProjectNo != "C-W02-b" {
				t.Fatalf("candidates: %v %+v", err, cands)
			}
			// Assigning: not to a case outside the candidates; then once.
			if _, err := j.Assign(ctx, amb[0].ID, "C-W01-late", "duty manager Li"); !errors.Is(err, ErrNotCandidate) {
				t.Fatalf("assign to a non-candidate: %v", err)
			}
			e, err := j.Assign(ctx, amb[0].ID, "C-W02-b", "duty manager Li")
			if err != nil || e.ProjectNo != "C-W02-b" {
				t.Fatalf("assign: %v %+v", err, e)
			}
			if _, err := j.Assign(ctx, amb[0].ID, "C-W02-a", "duty manager Li"); !errors.Is(err, store.ErrWrongState) {
				t.Fatalf("assign again: %v, want wrong state", err)
			}
			st = joinStates(t, db)
			if r := st["d-W02:e1:1"]; r.JoinState != store.Joined || r.CaseNo != "C-W02-b" || r.AssignedBy != "duty manager Li" || r.AssignedAt == "" {
				t.Fatalf("assigned: %+v", r)
			}

			// A synchronised record of the W04 boot arrives: the first
			// one's time is repaired (09:20) and it joins.
			saveStaffRatings(t, db, now, staffRating{seq: 2, counter: "W04", at: hallAt(9, 45), synced: true, boot: "b1",
				uptime: 90*time.Second + hallAt(9, 45).Sub(hallAt(9, 20))})
			// Past the match window: the rest are settled.
			now = now.Add(time.Hour)
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			st = joinStates(t, db)
			if r := st["d-W04:e1:1"]; r.JoinState != store.Joined || r.CaseNo != "C-W04" {
				t.Fatalf("W04 repaired: %+v, want joined with C-W04", r)
			}
			if r := st["d-W03:e1:1"]; r.JoinState != store.Unmatched || r.JoinReason != store.ReasonNoCase {
				t.Fatalf("W03 other staff: %+v, want unmatched no_case", r)
			}
			// The synchronised W04 rating at 09:45: C-W04 has its
			// evaluation, so no case is left for it.
			if r := st["d-W04:e1:2"]; r.JoinState != store.Unmatched {
				t.Fatalf("W04 second: %+v, want unmatched", r)
			}
			evs, err := db.Evaluations(ctx, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			per := map[string]int{}
			for _, e := range evs {
				per[e.ProjectNo]++
			}
			if len(evs) != 3 || per["C-W01"] != 1 || per["C-W02-b"] != 1 || per["C-W04"] != 1 {
				t.Fatalf("evaluations %v, want one each of C-W01, C-W02-b, C-W04", per)
			}
		})
	}
}

// TestTimeJoinNeverTrustsAnUnrepairedClock: with no synchronised record of
// its boot, a rating is unmatched with the reason, never joined by time.
// A queue rating with no case of its ticket joins by time once its window
// ends.
func TestTimeJoinNeverTrustsAnUnrepairedClock(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{"sqlite": openSQLite, "postgres": openPG} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			now := hallAt(10, 0)
			j := NewJoiner(JoinConfig{Store: db, Location: sh, MatchWindow: 30 * time.Minute, Sink: SinkTable,
				Clock: testenv.ClockFunc(func() time.Time { return now })})
			if err := db.SaveCases(ctx, []store.Case{
				timeCase("C-W05", "W05", "", hallAt(9, 0), hallAt(9, 30)),
				timeCase("C-W06", "W06", "", hallAt(9, 0), hallAt(9, 30)),
			}); err != nil {
				t.Fatal(err)
			}
			saveStaffRatings(t, db, now,
				// Its wall clock happens to fall in the case: not trusted.
				staffRating{seq: 1, counter: "W05", at: hallAt(9, 20), boot: "b9", uptime: time.Minute},
				staffRating{seq: 1, counter: "W06", at: hallAt(9, 20), synced: true, source: record.SourceQueue},
			)
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			st := joinStates(t, db)
			if st["d-W05:e1:1"].JoinState != store.Waiting || st["d-W06:e1:1"].JoinState != store.Waiting {
				t.Fatalf("before the window ends: %+v %+v", st["d-W05:e1:1"], st["d-W06:e1:1"])
			}
			now = now.Add(time.Hour)
			if err := j.Pass(ctx); err != nil {
				t.Fatal(err)
			}
			st = joinStates(t, db)
			if r := st["d-W05:e1:1"]; r.JoinState != store.Unmatched || r.JoinReason != store.ReasonClockUnsynced {
				t.Fatalf("unsynchronised: %+v, want unmatched clock_not_synced", r)
			}
			if r := st["d-W06:e1:1"]; r.JoinState != store.Joined || r.CaseNo != "C-W06" {
				t.Fatalf("queue rating without a case of its ticket: %+v, want joined by time with C-W06", r)
			}
		})
	}
}
