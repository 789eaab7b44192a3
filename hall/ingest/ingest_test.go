package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/store/storetest"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

const prefix = "hallrate/v1"

func pressOf(t testing.TB, device, epoch string, seq uint64, sat int) []byte {
	t.Helper()
	p := record.Press{
		V: 1, ID: record.PressID(device, epoch, seq), Device: device, Hall: "h1", Counter: "W05",
		Epoch: epoch, Seq: seq, Button: 6 - sat, Label: "very_satisfied", Satisfaction: sat,
		Disposition: record.Counted,
		Ticket:      &record.TicketRef{ID: "A023", State: record.Done, Staff: "S017"},
		PressedAt:   "2026-11-24T09:15:03.123+08:00", ClockSynced: true, BootID: "b", UptimeMS: 1,
	}
	b, err := json.MarshalIndent(p, "", "  ") // indented: the store keeps it compact
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func press(t testing.TB, device, epoch string, seq uint64) []byte {
	return pressOf(t, device, epoch, seq, 5)
}

func rating(t testing.TB, device, epoch string, seq uint64) Message {
	return Message{Topic: prefix + "/h1/W05/rating", Payload: press(t, device, epoch, seq)}
}

type recorder struct {
	ratings []store.Rating
	events  []store.GapEvent
}

func openStore(t testing.TB) *store.DB { return storetest.SQLite(t) }

func newIngester(t testing.TB, db *store.DB, export Sink) (*Ingester, *recorder) {
	t.Helper()
	r := &recorder{}
	sh, _ := time.LoadLocation("Asia/Shanghai")
	in, err := New(Config{
		Prefix: prefix, Store: db, Export: export, Location: sh,
		DueDate:  func(time.Time) string { return "2026-12-03" },
		Clock:    testenv.ClockFunc(func() time.Time { return time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) }),
		OnRating: func(p store.Rating) { r.ratings = append(r.ratings, p) },
		OnEvent:  func(e store.GapEvent) { r.events = append(r.events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return in, r
}

func handle(t testing.TB, in *Ingester, msgs ...Message) {
	t.Helper()
	if err := in.Handle(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicatesAreStoredOnceAndExported(t *testing.T) {
	db := openStore(t)
	path := filepath.Join(t.TempDir(), "records.jsonl")
	export, err := OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer export.Close()
	in, r := newIngester(t, db, export)
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 1))
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 3))
	if s := in.Stats(); s.Stored != 2 || s.Duplicates != 2 || s.Gaps != 1 {
		t.Fatalf("stats %+v", s)
	}
	if len(r.ratings) != 2 || r.ratings[0].ServiceDay != "2026-11-24" || r.ratings[0].Followup != nil {
		t.Fatalf("ratings %+v", r.ratings)
	}
	if len(r.events) != 1 || r.events[0].Seqs.String() != "2" {
		t.Fatalf("events %+v", r.events)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || bytes.Contains(b, []byte("  ")) {
		t.Fatalf("export:\n%s", b)
	}
}

func TestBadRatingOpensFollowup(t *testing.T) {
	db := openStore(t)
	in, _ := newIngester(t, db, nil)
	handle(t, in, Message{Topic: prefix + "/h1/W05/rating", Payload: pressOf(t, "w05-a", "e1", 1, 2)})
	fs, err := db.ClaimAlerts(context.Background(), 1, 1000, 10)
	if err != nil || len(fs) != 1 {
		t.Fatalf("alerts %+v, %v", fs, err)
	}
	var a map[string]any
	if err := json.Unmarshal(fs[0].Alert, &a); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"v": 1.0, "kind": "bad_rating", "ratingId": "w05-a:e1:1", "hall": "h1", "counter": "W05",
		"ticket": "A023", "projectNo": "", "staff": "S017", "satisfaction": 2.0,
		"pressed_at": "2026-11-24T09:15:03.123+08:00", "due": "2026-12-03"}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("alert %s = %v, want %v", k, a[k], v)
		}
	}
	if len(a) != len(want) {
		t.Errorf("alert has %d fields, want %d: %s", len(a), len(want), fs[0].Alert)
	}
}

func TestStatusAudit(t *testing.T) {
	db := openStore(t)
	in, _ := newIngester(t, db, nil)
	last, pending := uint64(5), int64(1)
	st, _ := json.Marshal(record.Status{V: 1, Online: true, Device: "w05-a", Epoch: "e1", LastSeq: &last, Pending: &pending})
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 3),
		Message{Topic: prefix + "/h1/W05/status", Payload: st})
	a, err := db.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Devices) != 1 || a.Devices[0].Missing.String() != "2,4" {
		t.Fatalf("audit %+v", a)
	}
	var b strings.Builder
	if err := PrintAudit(&b, a, in.Stats()); err != nil || !strings.Contains(b.String(), "MISSING seq 2,4 (2)") {
		t.Fatalf("printed %q, %v", b.String(), err)
	}
}

func TestMalformedIsCountedNotFatal(t *testing.T) {
	db := openStore(t)
	in, r := newIngester(t, db, nil)
	bad := press(t, "w05-a", "e1", 2)
	bad = bytes.Replace(bad, []byte(`"w05-a:e1:2"`), []byte(`"w05-a:e1:3"`), 1)
	handle(t, in,
		Message{Topic: prefix + "/h1/W05/rating", Payload: []byte("{not json")},
		Message{Topic: prefix + "/h1/W05/rating", Payload: bad},
		Message{Topic: prefix + "/h1/W05/status", Payload: []byte(`{"v":2,"device":"w05-a"}`)},
		Message{Topic: prefix + "/h1/W05/status", Payload: nil},
		Message{Topic: "other/h1/W05/rating", Payload: press(t, "w05-a", "e1", 1)},
		Message{Topic: prefix + "/h1/W05/extra/rating", Payload: press(t, "w05-a", "e1", 1)},
		rating(t, "w05-a", "e1", 1),
	)
	if s := in.Stats(); s.Malformed != 6 || s.Stored != 1 || len(r.ratings) != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Published on another counter's topic: stored, not verified.
	handle(t, in, Message{Topic: prefix + "/h1/W06/rating", Payload: press(t, "w05-a", "e1", 2)})
	if s := in.Stats(); s.Mismatched != 1 || r.ratings[1].Verified {
		t.Fatalf("stats %+v", s)
	}
}

func TestJSONLRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	if err := os.WriteFile(path, []byte("{\"a\":1}\n{\"v\":1,\"id\":\"w05"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Repaired == 0 {
		t.Error("incomplete last line not cut")
	}
	n := 0
	if err := j.Each(func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("lines %d, %v", n, err)
	}
}

func TestDescribe(t *testing.T) {
	p, err := record.DecodePress(press(t, "w05-a", "9f2c41d7", 42))
	if err != nil {
		t.Fatal(err)
	}
	got := Describe(p)
	for _, want := range []string{"W05", "A023 (S017)", "非常满意 very_satisfied", "counted", "w05-a:9f2c41d7:42"} {
		if !strings.Contains(got, want) {
			t.Errorf("Describe = %q, lacks %q", got, want)
		}
	}
}

func TestJSONLIsNotForOthers(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new.jsonl")
	j, err := OpenJSONL(fresh)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	old := filepath.Join(dir, "old.jsonl")
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err = OpenJSONL(old)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	for _, p := range []string{fresh, old} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: %v, %v: others may read it", p, fi.Mode(), err)
		}
	}
}

func TestDescribeCannotForgeALine(t *testing.T) {
	for _, staff := range []string{"S1\naudit: forged line", "S1\r", "\u202eS1", "S\x00017", "S\xff"} {
		p := record.Press{Counter: "W01", Satisfaction: 5, Label: "x", Disposition: record.Counted, ID: "d/e/1",
			Ticket: &record.TicketRef{ID: "A1", Staff: staff}}
		got := Describe(p)
		if strings.ContainsAny(got, "\n\r\x00\u202e") || !utf8.ValidString(got) {
			t.Errorf("staff %q described as %q", staff, got)
		}
	}
	if got := Describe(record.Press{Counter: "W01", Ticket: &record.TicketRef{ID: "A1", Staff: "张三"}}); !strings.Contains(got, "(张三)") {
		t.Errorf("a plain name is quoted: %q", got)
	}
}
