package ingest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/testenv"
)

// poison are the inputs of issue 12 that stopped PostgreSQL ingest for
// good: each breaks the field rules.
func poison(t *testing.T) []Message {
	good := press(t, "w05-a", "e1", 2)
	staffNUL := bytes.Replace(good, []byte(`"S017"`), []byte(`"a\u0000b"`), 1)
	badUTF8 := bytes.Replace(good, []byte(`"S017"`), []byte("\"S\xff017\""), 1)
	button := bytes.Replace(good, []byte(`"button": 1`), []byte(`"button": 3000000000`), 1)
	huge := bytes.Replace(good, []byte(`"S017"`), []byte(`"`+strings.Repeat("x", 1<<20)+`"`), 1)
	if bytes.Equal(button, good) {
		t.Fatal("button not in the record")
	}
	return []Message{
		{Topic: prefix + "/h1/W05/rating", Payload: staffNUL},
		{Topic: prefix + "/h1/W05/rating", Payload: badUTF8},
		{Topic: prefix + "/h1/W05/rating", Payload: button},
		{Topic: prefix + "/h1/W05/rating", Payload: huge},
		{Topic: prefix + "/h1/W05/status", Payload: []byte(`{"v":1,"online":true,"device":"w05-a","version":"1.0\u0000"}`)},
	}
}

func TestPoisonRefusedParkedNeverHoldsBack(t *testing.T) {
	for name, open := range map[string]func(testing.TB) *store.DB{
		"sqlite":   storetest.SQLite,
		"postgres": func(t testing.TB) *store.DB { return storetest.Postgres(t, &pg) },
	} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			in, r := newIngester(t, db, nil)
			msgs := append([]Message{rating(t, "w05-a", "e1", 1)}, poison(t)...)
			msgs = append(msgs, rating(t, "w05-a", "e1", 2))
			handle(t, in, msgs...)
			if len(r.ratings) != 2 {
				t.Fatalf("stored %d good records, want 2", len(r.ratings))
			}
			s := in.Stats()
			if s.Refused != 5 || s.Parked != 5 || s.Malformed != 0 {
				t.Fatalf("stats %+v", s)
			}
			a, err := db.Audit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if a.ParkedTotal != 5 || len(a.Parked) != 5 {
				t.Fatalf("parked %d (%d listed), want 5", a.ParkedTotal, len(a.Parked))
			}
			// Newest first: the status; its bytes are kept as they came.
			if p := a.Parked[0]; !strings.HasSuffix(p.Topic, "/status") || !strings.Contains(p.Reason, "version") ||
				!bytes.Equal(p.Payload, msgs[5].Payload) {
				t.Errorf("parked status %+v", p)
			}
			if p := a.Parked[3]; !bytes.Equal(p.Payload, msgs[2].Payload) || !strings.Contains(p.Reason, "UTF-8") {
				t.Errorf("parked invalid UTF-8: %+v", p)
			}
			if p := a.Parked[1]; p.Size != len(msgs[4].Payload) || len(p.Payload) != store.MaxParkedPayload {
				t.Errorf("parked 1 MB record: size %d, kept %d", p.Size, len(p.Payload))
			}
			if since, _ := in.Stuck(); !since.IsZero() {
				t.Errorf("stuck since %v", since)
			}
		})
	}
}

// refusing is a store that refuses every batch holding a record of a
// given seq, as PostgreSQL refuses a value it cannot hold, or every batch
// while it is away.
type refusing struct {
	Saver
	mu      sync.Mutex
	seq     uint64
	away    bool
	batches int
}

func (r *refusing) SaveBatch(ctx context.Context, b store.Batch) (store.Saved, error) {
	r.mu.Lock()
	r.batches++
	away := r.away
	r.mu.Unlock()
	if away {
		return store.Saved{}, errors.New("connection refused")
	}
	for _, x := range b.Ratings {
		if x.Seq == r.seq {
			return store.Saved{}, errors.New(`ERROR: value refused (SQLSTATE 22000)`)
		}
	}
	return r.Saver.SaveBatch(ctx, b)
}

func TestBatchRefusedIsSplitAndTheCulpritParked(t *testing.T) {
	db := storetest.SQLite(t)
	fake := &refusing{Saver: db, seq: 2}
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	var stored []uint64
	in, err := New(Config{Prefix: prefix, Store: fake, Clock: testenv.ClockFunc(func() time.Time { return now }),
		OnRating: func(r store.Rating) { stored = append(stored, r.Seq) }})
	if err != nil {
		t.Fatal(err)
	}
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 2), rating(t, "w05-a", "e1", 3))
	if len(stored) != 2 || stored[0] != 1 || stored[1] != 3 {
		t.Fatalf("stored seqs %v, want 1 and 3", stored)
	}
	if s := in.Stats(); s.DBRefused != 1 || s.Parked != 1 {
		t.Fatalf("stats %+v", s)
	}
	a, err := db.Audit(context.Background())
	if err != nil || a.ParkedTotal != 1 || !strings.Contains(a.Parked[0].Reason, "refused by the database") {
		t.Fatalf("parked %+v, %v", a.Parked, err)
	}

	// A store that is away parks nothing: the batch is an error, for the
	// broker to deliver again, and ingest is stuck from the first one.
	fake.away = true
	if err := in.Handle(context.Background(), []Message{rating(t, "w05-a", "e1", 4), rating(t, "w05-a", "e1", 5)}); err == nil {
		t.Fatal("batch acknowledged while the store is away")
	}
	since, why := in.Stuck()
	if !since.Equal(now) || !strings.Contains(why, "connection refused") {
		t.Fatalf("stuck since %v (%q), want %v", since, why, now)
	}
	now = now.Add(2 * time.Minute)
	if err := in.Handle(context.Background(), []Message{rating(t, "w05-a", "e1", 4)}); err == nil {
		t.Fatal("batch acknowledged while the store is away")
	}
	if s, _ := in.Stuck(); !s.Equal(since) {
		t.Fatalf("stuck since moved to %v", s)
	}
	fake.away = false
	handle(t, in, rating(t, "w05-a", "e1", 4), rating(t, "w05-a", "e1", 5))
	if s, _ := in.Stuck(); !s.IsZero() {
		t.Fatalf("still stuck since %v", s)
	}
	if a, _ := db.Audit(context.Background()); a.ParkedTotal != 1 {
		t.Fatalf("parked %d while the store was away", a.ParkedTotal)
	}
}

// A flood of refused messages is logged once per counter per minute.
func TestRefusedLoggedOncePerCounterPerMinute(t *testing.T) {
	var logs bytes.Buffer
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	in, err := New(Config{Prefix: prefix, Store: storetest.SQLite(t), Clock: testenv.ClockFunc(func() time.Time { return now }),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	bad := func(counter string) Message {
		p := bytes.Replace(press(t, "w05-a", "e1", 1), []byte(`"S017"`), []byte(`"a\u0000b"`), 1)
		return Message{Topic: prefix + "/h1/" + counter + "/rating", Payload: p}
	}
	for range 3 {
		handle(t, in, bad("W05"), bad("W05"), bad("W06"))
	}
	now = now.Add(59 * time.Second)
	handle(t, in, bad("W05"))
	if n := strings.Count(logs.String(), "refused and parked"); n != 2 {
		t.Fatalf("%d log lines for two counters within a minute:\n%s", n, logs.String())
	}
	now = now.Add(time.Second)
	handle(t, in, bad("W05"))
	if n := strings.Count(logs.String(), "refused and parked"); n != 3 {
		t.Fatalf("%d log lines after a minute, want 3", n)
	}
	if s := in.Stats(); s.Refused != 11 || s.Parked != 11 {
		t.Fatalf("stats %+v", s)
	}
}
