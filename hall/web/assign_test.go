package web

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/esup"
	"github.com/hallrate/hallrate/hall/live"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// TestAssignAmbiguousRating: a staff-key rating between two overlapping
// cases is listed with its candidates, on the API and the dashboard, and
// the token holder assigns it: one evaluation, who and when recorded.
func TestAssignAmbiguousRating(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "c.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	at := func(h, m int) time.Time { return time.Date(2026, 11, 24, h, m, 0, 0, time.UTC) }
	now := at(10, 0)
	mk := func(no string, a, f time.Time) store.Case {
		am, fm := a.UnixMilli(), f.UnixMilli()
		return store.Case{ProjectNo: no, Hall: "h1", Counter: "W04", AcceptedAt: a.Format(time.RFC3339), FinishedAt: f.Format(time.RFC3339),
			AcceptedMS: &am, FinishedMS: &fm, ServiceDay: "2026-11-24", ReceivedMS: 1}
	}
	if err := db.SaveCases(ctx, []store.Case{mk("C-1", at(9, 0), at(9, 15)), mk("C-2", at(9, 10), at(9, 25))}); err != nil {
		t.Fatal(err)
	}
	p := record.Press{V: 1, ID: "w04-a:e1:1", Device: "w04-a", Hall: "h1", Counter: "W04", Epoch: "e1", Seq: 1, Button: 1,
		Label: "x", Satisfaction: 5, Disposition: record.Counted, ClockSynced: true,
		Ticket:    &record.TicketRef{ID: "S-e1-1", State: record.Done, Source: record.SourceStaff},
		PressedAt: at(9, 20).Format(record.TimeLayout)}
	if _, err := db.SaveBatch(ctx, store.Batch{Ratings: []store.Rating{{Press: p, Raw: []byte("{}"), PressedMS: at(9, 20).UnixMilli(),
		ServiceDay: "2026-11-24", Verified: true, StoredMS: now.UnixMilli()}}}); err != nil {
		t.Fatal(err)
	}
	j := esup.NewJoiner(esup.JoinConfig{Store: db, Location: time.UTC, MatchWindow: 30 * time.Minute, Sink: esup.SinkTable,
		Clock: testenv.ClockFunc(func() time.Time { return now })})
	if err := j.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: db, Hall: "h1", Location: time.UTC, Token: testToken, Assigner: j, Hosts: []string{"example.com"},
		Clock: testenv.ClockFunc(func() time.Time { return now })})
	if err := s.AddDashboard(t.Context(), live.NewHub(nil)); err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	const local = "127.0.0.1:40000"

	_, body := do(h, "GET", "/api/v1/ratings?join_state=ambiguous", local, "", "")
	var list struct{ Ratings []store.StoredRating }
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Ratings) != 1 || len(list.Ratings[0].Candidates) != 2 {
		t.Fatalf("ambiguous list: %v %s", err, body)
	}
	if _, page := do(h, "GET", "/", local, "", ""); !strings.Contains(page, `class="assign" data-id="w04-a:e1:1" data-case="C-2"`) {
		t.Fatalf("the dashboard offers no assignment:\n%s", page)
	}
	if code, body := do(h, "POST", "/api/v1/ratings/w04-a:e1:1/assign", local, "", `{"projectNo":"C-2"}`); code != 401 {
		t.Fatalf("assign without the token: %d %s", code, body)
	}
	if code, body := do(h, "POST", "/api/v1/ratings/w04-a:e1:1/assign", local, testToken, `{"projectNo":"C-9"}`); code != 400 || !strings.Contains(body, `"field": "projectNo"`) {
		t.Fatalf("assign to a case that is not a candidate: %d %s", code, body)
	}
	if code, body := do(h, "POST", "/api/v1/ratings/w04-a:e1:1/assign", local, testToken, `{"projectNo":"C-2","by":"duty manager Wang"}`); code != 200 {
		t.Fatalf("assign: %d %s", code, body)
	}
	if code, body := do(h, "POST", "/api/v1/ratings/w04-a:e1:1/assign", local, testToken, `{"projectNo":"C-1"}`); code != 409 {
		t.Fatalf("assign again: %d %s", code, body)
	}
	if code, _ := do(h, "POST", "/api/v1/ratings/nope:e1:1/assign", local, testToken, `{"projectNo":"C-1"}`); code != 404 {
		t.Fatalf("assign an unknown rating: %d", code)
	}
	_, body = do(h, "GET", "/api/v1/ratings?join_state=joined", local, "", "")
	if err := json.Unmarshal([]byte(body), &list); err != nil || len(list.Ratings) != 1 ||
		list.Ratings[0].CaseNo != "C-2" || list.Ratings[0].AssignedBy != "duty manager Wang" || list.Ratings[0].AssignedAt == "" {
		t.Fatalf("assigned rating: %v %s", err, body)
	}
	evs, err := db.Evaluations(ctx, "", 10)
	if err != nil || len(evs) != 1 || evs[0].ProjectNo != "C-2" {
		t.Fatalf("evaluations after the assignment: %v %+v", err, evs)
	}
}
