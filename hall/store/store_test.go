package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/pgtest"
	"github.com/hallrate/hallrate/record"
)

// pg is this test binary's PostgreSQL, started by TestMain.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

// each runs a test against SQLite and against PostgreSQL.
func each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPG(t)) })
}

func openSQLite(t testing.TB) *store.DB { return storetest.SQLite(t) }

func openPG(t testing.TB) *store.DB { return storetest.Postgres(t, &pg) }

func rating(device, epoch string, seq uint64, sat int, ticket string) store.Rating {
	p := record.Press{V: 1, ID: record.PressID(device, epoch, seq), Device: device, Hall: "h1", Counter: "W05",
		Epoch: epoch, Seq: seq, Button: 1, Label: "x", Satisfaction: sat, Disposition: record.Counted,
		Ticket:    &record.TicketRef{ID: ticket, State: record.Done, Staff: "S1"},
		PressedAt: "2026-11-24T09:15:03.123+08:00", ClockSynced: true}
	raw, _ := json.Marshal(p)
	return store.Rating{Press: p, Raw: raw, PressedMS: 1795914903123, ServiceDay: "2026-11-24", Verified: true, StoredMS: 1000}
}

func ids(rs []store.Rating) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestSaveBatchStoresOnce(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		b := store.Batch{Ratings: []store.Rating{rating("d1", "e1", 2, 5, "A1"), rating("d1", "e1", 1, 5, "A1"), rating("d1", "e1", 1, 5, "A1")}}
		s, err := db.SaveBatch(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(s.New)); got != "[d1:e1:1 d1:e1:2]" {
			t.Fatalf("new = %s", got)
		}
		s, err = db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{rating("d1", "e1", 2, 5, "A1"), rating("d1", "e1", 5, 5, "A1")}})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(ids(s.New)); got != "[d1:e1:5]" {
			t.Fatalf("new = %s", got)
		}
		if len(s.Events) != 1 || s.Events[0].Kind != store.GapOpened || s.Events[0].Seqs.String() != "3-4" {
			t.Fatalf("events = %+v", s.Events)
		}
		s, err = db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{rating("d1", "e1", 3, 5, "A1")}})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Events) != 1 || s.Events[0].Kind != store.GapFilled {
			t.Fatalf("events = %+v", s.Events)
		}
		last, pending := uint64(7), int64(1)
		st := store.StatusUpdate{Hall: "h1", Counter: "W05", Status: record.Status{V: 1, Online: true, Device: "d1",
			Epoch: "e1", LastSeq: &last, Pending: &pending}, Raw: []byte(`{}`), ReceivedMS: 5}
		if _, err := db.SaveBatch(ctx, store.Batch{Statuses: []store.StatusUpdate{st}}); err != nil {
			t.Fatal(err)
		}
		// The Last Will keeps the audited epoch and last_seq.
		will := store.StatusUpdate{Hall: "h1", Counter: "W05", Status: record.Status{V: 1, Device: "d1"}, Raw: []byte(`{}`), ReceivedMS: 6}
		if _, err := db.SaveBatch(ctx, store.Batch{Statuses: []store.StatusUpdate{will}}); err != nil {
			t.Fatal(err)
		}
		a, err := db.Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.Stored != 4 || len(a.Streams) != 1 || a.Streams[0].Gaps.String() != "4" || a.Streams[0].MaxSeq != 5 {
			t.Fatalf("audit = %+v", a)
		}
		if len(a.Devices) != 1 || a.Devices[0].Online || !a.Devices[0].Audited || a.Devices[0].Missing.String() != "4,6" {
			t.Fatalf("devices = %+v", a.Devices)
		}
		n, err := db.CountRatings(ctx)
		if err != nil || n != 4 {
			t.Fatalf("count = %d, %v", n, err)
		}
	})
}

func TestFollowupsAndAlerts(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := rating("d1", "e1", 1, 2, "A1")
		r.Followup = &store.Followup{Hall: "h1", Counter: "W05", Ticket: "A1", Staff: "S1", Satisfaction: 2,
			PressedAt: r.PressedAt, Due: "2026-12-03", CreatedMS: 1, Alert: []byte(`{"v":1}`)}
		for range 2 {
			if _, err := db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{r}}); err != nil {
				t.Fatal(err)
			}
		}
		al, err := db.ClaimAlerts(ctx, 10, 1000, 10)
		if err != nil || len(al) != 1 || string(al[0].Alert) != `{"v":1}` {
			t.Fatalf("alerts = %+v, %v", al, err)
		}
		if al2, _ := db.ClaimAlerts(ctx, 10, 1000, 10); len(al2) != 0 {
			t.Fatalf("claimed twice: %+v", al2)
		}
		if err := db.ReleaseAlert(ctx, al[0].ID); err != nil {
			t.Fatal(err)
		}
		if al2, _ := db.ClaimAlerts(ctx, 10, 1000, 10); len(al2) != 1 {
			t.Fatalf("released alert not claimed again: %+v", al2)
		}
		fs, err := db.Followups(ctx, true, 0)
		if err != nil || len(fs) != 1 || fs[0].Due != "2026-12-03" {
			t.Fatalf("followups = %+v, %v", fs, err)
		}
		if _, err := db.CloseFollowup(ctx, fs[0].ID, "called the citizen", 99); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CloseFollowup(ctx, fs[0].ID, "again", 99); !errors.Is(err, store.ErrWrongState) {
			t.Fatalf("second close: %v", err)
		}
		if _, err := db.CloseFollowup(ctx, 12345, "x", 99); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("close unknown: %v", err)
		}
		if fs, _ := db.Followups(ctx, true, 0); len(fs) != 0 {
			t.Fatalf("closed follow-up still open: %+v", fs)
		}
	})
}

func evaluation(ratingID, projectNo string) store.Evaluation {
	return store.Evaluation{RatingID: ratingID, ProjectNo: projectNo, Hall: "h1", Counter: "W05", Ticket: "A1",
		Device: "d1", ProManager: "S1", Satisfaction: "5", AssessTime: "2026-11-24 09:15:03",
		Payload: []byte(`{"ratingId":"` + ratingID + `"}`), State: store.Pending, CreatedMS: 100}
}

func TestJoinAndQueue(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rs := []store.Rating{rating("d1", "e1", 1, 5, "A1"), rating("d1", "e1", 2, 5, "A1")}
		if _, err := db.SaveBatch(ctx, store.Batch{Ratings: rs}); err != nil {
			t.Fatal(err)
		}
		c := store.Case{ProjectNo: "P1", Hall: "h1", Counter: "W05", Ticket: "A1", ServiceDay: "2026-11-24", ReceivedMS: 1}
		if err := db.SaveCases(ctx, []store.Case{c, c}); err != nil {
			t.Fatal(err)
		}
		err := db.Join(ctx, func(j *store.JoinTx) error {
			w, err := j.Joinable(10, 1<<62)
			if err != nil {
				return err
			}
			if len(w) != 2 {
				return fmt.Errorf("joinable = %+v", w)
			}
			cs, err := j.Cases("h1", "W05", "A1", "2026-11-24")
			if err != nil || len(cs) != 1 {
				return fmt.Errorf("cases = %+v, %v", cs, err)
			}
			for i, r := range w {
				ok, err := j.AddEvaluation(evaluation(r.ID, cs[0].ProjectNo))
				if err != nil {
					return err
				}
				if ok != (i == 0) {
					return fmt.Errorf("rating %d added = %v", i, ok)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		dup, err := db.Ratings(ctx, store.RatingFilter{JoinState: store.DuplicateCase})
		if err != nil || len(dup) != 1 || dup[0].ID != "d1:e1:2" {
			t.Fatalf("duplicates = %+v, %v", dup, err)
		}
		got, err := db.ClaimDue(ctx, "a", 200, 1000, 10)
		if err != nil || len(got) != 1 {
			t.Fatalf("claimed %+v, %v", got, err)
		}
		if again, _ := db.ClaimDue(ctx, "b", 300, 1000, 10); len(again) != 0 {
			t.Fatalf("claimed under lease: %+v", again)
		}
		// b takes over after the lease ran out; a's late outcome is refused.
		if again, _ := db.ClaimDue(ctx, "b", 1000, 2000, 10); len(again) != 1 {
			t.Fatalf("expired lease not claimed: %+v", again)
		}
		err = db.RecordOutcome(ctx, store.Outcome{RatingID: "d1:e1:1", Owner: "a", State: store.Delivered, AtMS: 1})
		if !errors.Is(err, store.ErrWrongState) {
			t.Fatalf("outcome under a lost lease: %v", err)
		}
		err = db.RecordOutcome(ctx, store.Outcome{RatingID: "d1:e1:1", Owner: "b", State: store.Rejected, Status: 400, Body: "bad", AtMS: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.RetryEvaluation(ctx, "nope", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("retry unknown: %v", err)
		}
		if err := db.RetryEvaluation(ctx, "d1:e1:1", 1); err != nil {
			t.Fatal(err)
		}
		if err := db.RetryEvaluation(ctx, "d1:e1:1", 1); !errors.Is(err, store.ErrWrongState) {
			t.Fatalf("retry pending: %v", err)
		}
		b, err := db.Backlog(ctx)
		if err != nil || b.Undelivered != 1 || b.OldestUndeliveredMS != 100 {
			t.Fatalf("backlog = %+v, %v", b, err)
		}
		got, _ = db.ClaimDue(ctx, "a", 3000, 4000, 10)
		if len(got) != 1 || got[0].Attempts != 1 || got[0].LastBody != "bad" {
			t.Fatalf("claimed %+v", got)
		}
		if err := db.RecordOutcome(ctx, store.Outcome{RatingID: "d1:e1:1", Owner: "a", State: store.Delivered, AtMS: 1}); err != nil {
			t.Fatal(err)
		}
		if b, _ := db.Backlog(ctx); b.Undelivered != 0 || b.States[store.Delivered] != 1 {
			t.Fatalf("backlog = %+v", b)
		}
		err = db.Join(ctx, func(j *store.JoinTx) error {
			n, err := j.ExpireWaiting(2000)
			if n != 0 {
				return fmt.Errorf("expired %d joined ratings", n)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentClaims has several claimers race on one queue: each
// evaluation is claimed by exactly one.
func TestConcurrentClaims(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const n = 300
		var rs []store.Rating
		for i := range n {
			rs = append(rs, rating("d1", "e1", uint64(i+1), 5, fmt.Sprintf("A%d", i)))
		}
		if _, err := db.SaveBatch(ctx, store.Batch{Ratings: rs}); err != nil {
			t.Fatal(err)
		}
		err := db.Join(ctx, func(j *store.JoinTx) error {
			for _, r := range rs {
				if _, err := j.AddEvaluation(evaluation(r.ID, "P"+r.ID)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		claimed := map[string]int{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				owner := fmt.Sprint("w", w)
				for range 200 {
					got, err := db.ClaimDue(ctx, owner, 200, int64(time.Hour/time.Millisecond), 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, e := range got {
						claimed[e.RatingID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != n {
			t.Fatalf("claimed %d of %d", len(claimed), n)
		}
		for id, k := range claimed {
			if k != 1 {
				t.Fatalf("%s claimed %d times", id, k)
			}
		}
	})
}

func TestUnsupportedDSN(t *testing.T) {
	if _, err := store.Open(context.Background(), "mysql://x", nil); !errors.Is(err, store.ErrUnsupported) {
		t.Fatalf("err = %v", err)
	}
	if _, err := store.Open(context.Background(), "sqlite:///nonexistent-dir/x.db", nil); err == nil {
		t.Fatal("opened a database in a missing directory")
	}
}

func TestCasesInsertAndAuditedUpdate(t *testing.T) {
	each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c := store.Case{ProjectNo: "P1", Hall: "h1", Counter: "W05", Ticket: "A1", Staff: "S1", ServiceDay: "2026-11-24", ReceivedMS: 1}
		if err := db.SaveCases(ctx, []store.Case{c}); err != nil {
			t.Fatal(err)
		}
		again := c
		again.ReceivedMS = 2
		if err := db.SaveCases(ctx, []store.Case{again}); err != nil {
			t.Fatalf("the same case again: %v", err)
		}
		changed := c
		changed.Staff = "S9"
		other := store.Case{ProjectNo: "P2", Hall: "h1", Counter: "W05", Ticket: "A2", ServiceDay: "2026-11-24", ReceivedMS: 1}
		err := db.SaveCases(ctx, []store.Case{other, changed})
		var ce *store.CaseConflictError
		if !errors.As(err, &ce) || ce.ProjectNo != "P1" || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("other content: %v, want a conflict naming P1", err)
		}
		if n, _ := db.CountCases(ctx); n != 1 {
			t.Fatalf("%d cases after a refused batch", n)
		}
		if _, err := db.UpdateCase(ctx, other, "test", 5); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update of an unknown case: %v", err)
		}
		if _, err := db.UpdateCase(ctx, changed, "tester", 7); err != nil {
			t.Fatal(err)
		}
		chs, err := db.CaseChanges(ctx, "P1")
		if err != nil || len(chs) != 1 || chs[0].Old.Staff != "S1" || chs[0].New.Staff != "S9" || chs[0].By != "tester" || chs[0].ChangedMS != 7 {
			t.Fatalf("changes %+v, %v", chs, err)
		}
		err = db.Join(ctx, func(j *store.JoinTx) error {
			got, _, err := j.CaseByNo("P1")
			if err == nil && got.Staff != "S9" {
				err = fmt.Errorf("staff %q after the update", got.Staff)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "c.db")
	db, err := store.Open(context.Background(), "sqlite://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveCases(context.Background(), []store.Case{{ProjectNo: "P1", Hall: "h1", Counter: "W05", Ticket: "A1", ServiceDay: "2026-11-24"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, %v; want 0600", f, fi.Mode(), err)
		}
	}
	db.Close()
	// A database file others could read loses their bits at open.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(context.Background(), "sqlite://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("reopened database file %v, %v; want 0640", fi.Mode(), err)
	}
	// A directory open to others is said at open.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	db, err = store.Open(context.Background(), "sqlite://"+path, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !strings.Contains(logged.String(), "directory is open to others") || !strings.Contains(logged.String(), "mode=0755") {
		t.Fatalf("no warning about a 0755 directory: %q", logged.String())
	}
}
