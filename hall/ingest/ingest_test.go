package ingest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/record"
)

const prefix = "hallrate/v1"

func press(t *testing.T, device, epoch string, seq uint64) []byte {
	t.Helper()
	p := record.Press{
		V: 1, ID: record.PressID(device, epoch, seq), Device: device, Hall: "h1", Counter: "W05",
		Epoch: epoch, Seq: seq, Button: 1, Label: "very_satisfied", Satisfaction: 5,
		Disposition: record.Counted,
		Ticket:      &record.TicketRef{ID: "A023", State: record.Done, Staff: "S017"},
		PressedAt:   "2026-11-24T09:15:03.123+08:00", ClockSynced: true, BootID: "b", UptimeMS: 1,
	}
	b, err := json.MarshalIndent(p, "", "  ") // indented: the sink must compact it
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rating(t *testing.T, device, epoch string, seq uint64) Message {
	return Message{Topic: prefix + "/h1/W05/rating", Payload: press(t, device, epoch, seq)}
}

func status(t *testing.T, device, epoch string, lastSeq uint64, pending int64) Message {
	t.Helper()
	s := record.Status{V: 1, Online: true, Device: device, Epoch: epoch, LastSeq: &lastSeq, Pending: &pending}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return Message{Topic: prefix + "/h1/W05/status", Payload: b}
}

type recorder struct {
	ratings []record.Press
	events  []Event
}

func newIngester(t *testing.T, sink Sink) (*Ingester, *recorder) {
	t.Helper()
	r := &recorder{}
	in, err := New(Config{
		Prefix: prefix, Sink: sink,
		Now:      func() time.Time { return time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) },
		OnRating: func(p record.Press) { r.ratings = append(r.ratings, p) },
		OnEvent:  func(e Event) { r.events = append(r.events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return in, r
}

func handle(t *testing.T, in *Ingester, msgs ...Message) {
	t.Helper()
	if err := in.Handle(msgs); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicatesAreStoredOnce(t *testing.T) {
	sink := &Memory{}
	in, r := newIngester(t, sink)
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 1)) // within a batch
	handle(t, in, rating(t, "w05-a", "e1", 2), rating(t, "w05-a", "e1", 1)) // across batches
	if sink.Len() != 2 || len(r.ratings) != 2 {
		t.Fatalf("stored %d, reported %d; want 2 and 2", sink.Len(), len(r.ratings))
	}
	if s := in.Stats(); s.Duplicates != 2 || s.Stored != 2 {
		t.Fatalf("stats %+v", s)
	}
	var line []byte
	sink.Each(func(b []byte) error { line = b; return nil })
	if bytes.ContainsAny(line, "\n ") {
		t.Errorf("stored record is not compact: %s", line)
	}
}

func TestGapOpenedAndFilled(t *testing.T) {
	in, r := newIngester(t, &Memory{})
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 2), rating(t, "w05-a", "e1", 6))
	if len(r.events) != 1 || r.events[0] != (Event{GapOpened, "w05-a", "e1", Range{3, 5}}) {
		t.Fatalf("events %+v, want one gap 3-5", r.events)
	}
	handle(t, in, rating(t, "w05-a", "e1", 4))
	if len(r.events) != 2 || r.events[1] != (Event{GapFilled, "w05-a", "e1", Range{4, 4}}) {
		t.Fatalf("events %+v, want seq 4 filled", r.events)
	}
	a := in.Audit()
	if len(a.Streams) != 1 || a.Streams[0].Gaps.String() != "3,5" || a.Streams[0].MaxSeq != 6 {
		t.Fatalf("audit %+v, want gaps 3,5 below 6", a.Streams)
	}
	// Another epoch of the same device is its own stream.
	handle(t, in, rating(t, "w05-a", "e2", 1))
	if len(r.events) != 2 {
		t.Fatalf("new epoch reported %+v", r.events[2:])
	}
	handle(t, in, rating(t, "w05-a", "e1", 3), rating(t, "w05-a", "e1", 5))
	a = in.Audit()
	if len(a.Streams[0].Gaps) != 0 {
		t.Fatalf("gaps %v remain", a.Streams[0].Gaps)
	}
	if s := in.Stats(); s.Gaps != 1 || s.Filled != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFirstRecordOfAnEpochAfterOne(t *testing.T) {
	in, r := newIngester(t, &Memory{})
	handle(t, in, rating(t, "w06-a", "e1", 3))
	if len(r.events) != 1 || r.events[0].Seqs != (Range{1, 2}) {
		t.Fatalf("events %+v, want gap 1-2", r.events)
	}
}

func TestStatusAudit(t *testing.T) {
	in, _ := newIngester(t, &Memory{})
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 2), rating(t, "w05-a", "e1", 4))
	// The device has written 9 records, 2 of them still in its outbox: 1..7
	// reached the broker, and 3, 5, 6, 7 never reached us.
	handle(t, in, status(t, "w05-a", "e1", 9, 2))
	a := in.Audit()
	if len(a.Devices) != 1 {
		t.Fatalf("devices %+v", a.Devices)
	}
	d := a.Devices[0]
	if !d.Audited || d.Missing.String() != "3,5-7" || d.Pending != 2 || d.Hall != "h1" || d.Counter != "W05" {
		t.Fatalf("device audit %+v, want missing 3,5-7", d)
	}
	// The Last Will carries no last_seq: the audit keeps the last one.
	handle(t, in, Message{Topic: prefix + "/h1/W05/status", Payload: record.OfflineStatus("w05-a")})
	d = in.Audit().Devices[0]
	if d.Online || d.Missing.String() != "3,5-7" {
		t.Fatalf("after offline status: %+v", d)
	}
	handle(t, in, rating(t, "w05-a", "e1", 3), rating(t, "w05-a", "e1", 5), rating(t, "w05-a", "e1", 6), rating(t, "w05-a", "e1", 7))
	if d := in.Audit().Devices[0]; len(d.Missing) != 0 {
		t.Fatalf("missing %v after the records arrived", d.Missing)
	}
	var out strings.Builder
	if err := in.Audit().Print(&out, in.Stats()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "all delivered records received") {
		t.Errorf("audit text:\n%s", out.String())
	}
}

func TestMalformedIsCountedNotFatal(t *testing.T) {
	in, r := newIngester(t, &Memory{})
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
}

func TestRestartDoesNotStoreAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.jsonl")
	sink, err := OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := newIngester(t, sink)
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 3))
	sink.Close()

	// A crash in the middle of an append leaves half a line.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"v":1,"id":"w05-a:e1:4","dev`)
	f.Close()

	sink, err = OpenJSONL(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	if sink.Repaired == 0 {
		t.Error("incomplete last line not cut")
	}
	in, r := newIngester(t, sink)
	if s := in.Stats(); s.Restored != 2 || s.Corrupt != 0 {
		t.Fatalf("read back %+v", s)
	}
	if g := in.Audit().Streams[0].Gaps; g.String() != "2" {
		t.Fatalf("restored gaps %v, want 2", g)
	}
	handle(t, in, rating(t, "w05-a", "e1", 1), rating(t, "w05-a", "e1", 3), rating(t, "w05-a", "e1", 2), rating(t, "w05-a", "e1", 4))
	if len(r.ratings) != 2 || r.ratings[0].Seq != 2 || r.ratings[1].Seq != 4 {
		t.Fatalf("stored again: %+v", r.ratings)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("file has %d lines, want 4:\n%s", len(lines), b)
	}
	for i, l := range lines {
		if _, err := record.DecodePress([]byte(l)); err != nil {
			t.Errorf("line %d: %v", i+1, err)
		}
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

func TestRanges(t *testing.T) {
	rs := Ranges{{1, 5}, {8, 8}}
	rs = rs.remove(3)
	rs = rs.remove(8)
	rs = rs.remove(1)
	if got := rs.String(); got != "2,4-5" {
		t.Fatalf("got %s", got)
	}
	if got := (Ranges{{2, 2}, {4, 9}}).upTo(5).String(); got != "2,4-5" {
		t.Fatalf("upTo: %s", got)
	}
}
