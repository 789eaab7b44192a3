// Package ingest decides what the collector keeps. It decodes the
// terminals' rating and status messages and hands each delivery from the
// broker to the store as one batch, in which every press record is kept
// once however often it is delivered. It opens the follow-up of a counted
// bad rating in the same batch, so the alert exists as soon as the rating
// is stored.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/record"
)

// Message is one message from the broker.
type Message struct {
	Topic   string
	Payload []byte
}

// Saver stores a batch durably; [store.DB] is one.
type Saver interface {
	SaveBatch(ctx context.Context, b store.Batch) (store.Saved, error)
}

// Config configures an [Ingester].
type Config struct {
	// Prefix is the topic prefix, such as "hallrate/v1".
	Prefix string
	Store  Saver
	// Export, when set, gets every newly stored record as one JSON line.
	Export Sink
	// Location is the hall's time zone: service days are its dates.
	Location *time.Location
	// DueDate returns the date a follow-up of a bad rating pressed at t is
	// due, 2006-01-02. Nil opens no follow-ups.
	DueDate func(pressed time.Time) string
	Logger  *slog.Logger
	Now     func() time.Time
	// OnRating is told of every newly stored record, after it is durable.
	// It must return promptly.
	OnRating func(store.Rating)
	// OnStatus is told of every status message stored. It must return
	// promptly.
	OnStatus func(store.StatusUpdate)
	// OnEvent is told of every finding of the seq audit, after it is
	// logged. It must return promptly.
	OnEvent func(store.GapEvent)
	// OnStored is called after each batch that stored something new.
	OnStored func()
}

// Stats are the ingester's counters.
type Stats struct {
	Stored     int64 // records newly stored
	Duplicates int64 // records already stored, delivered again
	Malformed  int64 // messages that could not be decoded
	Mismatched int64 // records whose hall or counter differ from their topic
	Statuses   int64 // status messages received
	Followups  int64 // follow-ups of bad ratings opened
	Gaps       int64 // gaps opened
	Filled     int64 // seqs received late, inside a gap
}

// Ingester stores the records of a stream of messages. Its methods are
// safe for concurrent use.
type Ingester struct {
	cfg Config
	log *slog.Logger

	stored, duplicates, malformed, mismatched, statuses, followups, gaps, filled atomic.Int64
}

// New returns an ingester.
func New(cfg Config) (*Ingester, error) {
	if cfg.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.OnRating == nil {
		cfg.OnRating = func(store.Rating) {}
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(store.GapEvent) {}
	}
	if cfg.OnStatus == nil {
		cfg.OnStatus = func(store.StatusUpdate) {}
	}
	if cfg.OnStored == nil {
		cfg.OnStored = func() {}
	}
	return &Ingester{cfg: cfg, log: cfg.Logger}, nil
}

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	return Stats{
		Stored: in.stored.Load(), Duplicates: in.duplicates.Load(), Malformed: in.malformed.Load(),
		Mismatched: in.mismatched.Load(), Statuses: in.statuses.Load(), Followups: in.followups.Load(),
		Gaps: in.gaps.Load(), Filled: in.filled.Load(),
	}
}

// Handle decodes a batch of messages and stores it in one transaction.
// Messages that cannot be decoded and records already stored are logged and
// counted, never an error: the caller may acknowledge the whole batch once
// Handle returns nil. An error means the store failed and nothing of the
// batch may be acknowledged.
func (in *Ingester) Handle(ctx context.Context, msgs []Message) error {
	now := in.cfg.Now()
	var b store.Batch
	ratings := 0
	for _, m := range msgs {
		t, err := ParseTopic(in.cfg.Prefix, m.Topic)
		if err != nil {
			in.malformedMsg(m, err)
			continue
		}
		switch t.Kind {
		case "rating":
			r, err := in.rating(t, m.Payload, now)
			if err != nil {
				in.malformedMsg(m, err)
				continue
			}
			ratings++
			b.Ratings = append(b.Ratings, r)
		case "status":
			s, err := DecodeStatus(m.Payload)
			if err != nil {
				in.malformedMsg(m, err)
				continue
			}
			b.Statuses = append(b.Statuses, store.StatusUpdate{Hall: t.Hall, Counter: t.Counter, Status: s,
				Raw: compact(m.Payload), ReceivedMS: now.UnixMilli()})
		default:
			in.malformedMsg(m, fmt.Errorf("topic %q: not a rating or status topic", m.Topic))
		}
	}
	saved, err := in.cfg.Store.SaveBatch(ctx, b)
	if err != nil {
		return fmt.Errorf("ingest: store %d records and %d statuses: %w", len(b.Ratings), len(b.Statuses), err)
	}
	in.statuses.Add(int64(len(b.Statuses)))
	for _, st := range b.Statuses {
		in.cfg.OnStatus(st)
	}
	in.duplicates.Add(int64(ratings - len(saved.New)))
	if in.cfg.Export != nil && len(saved.New) > 0 {
		lines := make([][]byte, len(saved.New))
		for i, r := range saved.New {
			lines[i] = r.Raw
		}
		// The store holds the records; the export is a copy, and a
		// failing copy must not hold back the broker.
		if err := in.cfg.Export.Append(lines); err != nil {
			in.log.Error("export records", "err", err, "records", len(lines))
		}
	}
	for _, e := range saved.Events {
		switch e.Kind {
		case store.GapOpened:
			in.gaps.Add(1)
			in.log.Warn("seq gap: records missing", "device", e.Device, "epoch", e.Epoch,
				"missing", e.Seqs.String(), "count", e.Seqs.Len())
		case store.GapFilled:
			in.filled.Add(1)
			in.log.Info("seq gap filled by a late record", "device", e.Device, "epoch", e.Epoch, "seq", e.Seqs.From)
		}
		in.cfg.OnEvent(e)
	}
	for _, r := range saved.New {
		in.stored.Add(1)
		if !r.Verified {
			in.mismatched.Add(1)
			in.log.Warn("record published on another counter's topic", "id", r.ID, "hall", r.Hall, "counter", r.Counter)
		}
		if r.Followup != nil {
			in.followups.Add(1)
		}
		in.cfg.OnRating(r)
	}
	if len(saved.New) > 0 {
		in.cfg.OnStored()
	}
	return nil
}

// rating decodes a press record published on topic t.
func (in *Ingester) rating(t Topic, payload []byte, now time.Time) (store.Rating, error) {
	p, err := record.DecodePress(payload)
	if err != nil {
		return store.Rating{}, err
	}
	pressed, err := time.Parse(time.RFC3339Nano, p.PressedAt)
	if err != nil {
		return store.Rating{}, fmt.Errorf("record: pressed_at: %w", err)
	}
	local := pressed.In(in.cfg.Location)
	r := store.Rating{
		Press: p, Raw: compact(payload), PressedMS: pressed.UnixMilli(),
		ServiceDay: local.Format(time.DateOnly),
		Verified:   p.Hall == t.Hall && p.Counter == t.Counter,
		StoredMS:   now.UnixMilli(),
	}
	if p.Disposition == record.Counted && p.Satisfaction <= 2 && in.cfg.DueDate != nil {
		r.Followup = in.followup(p, in.cfg.DueDate(local), now)
	}
	return r, nil
}

// Alert is the 差评 alert published on {prefix}/{hall}/alert.
type Alert struct {
	V            int    `json:"v"`
	Kind         string `json:"kind"`
	RatingID     string `json:"ratingId"`
	Hall         string `json:"hall"`
	Counter      string `json:"counter"`
	Ticket       string `json:"ticket"`
	ProjectNo    string `json:"projectNo"`
	Staff        string `json:"staff"`
	Satisfaction int    `json:"satisfaction"`
	PressedAt    string `json:"pressed_at"`
	Due          string `json:"due"`
}

func (in *Ingester) followup(p record.Press, due string, now time.Time) *store.Followup {
	a := Alert{V: record.Version, Kind: "bad_rating", RatingID: p.ID, Hall: p.Hall, Counter: p.Counter,
		Satisfaction: p.Satisfaction, PressedAt: p.PressedAt, Due: due}
	if p.Ticket != nil {
		a.Ticket, a.ProjectNo, a.Staff = p.Ticket.ID, p.Ticket.ProjectNo, p.Ticket.Staff
	}
	b, _ := json.Marshal(a) // strings and ints only: cannot fail
	return &store.Followup{Hall: a.Hall, Counter: a.Counter, Ticket: a.Ticket, ProjectNo: a.ProjectNo, Staff: a.Staff,
		Satisfaction: a.Satisfaction, PressedAt: a.PressedAt, Due: due, CreatedMS: now.UnixMilli(), Alert: b}
}

// malformedMsg logs a message that cannot be used. A broken publisher
// could send many: log the first ten, then every hundredth.
func (in *Ingester) malformedMsg(m Message, err error) {
	n := in.malformed.Add(1)
	if n <= 10 || n%100 == 0 {
		in.log.Warn("malformed message ignored", "topic", m.Topic, "err", err, "malformed_total", n)
	}
}

// compact returns payload as compact JSON, fit for one line of a file;
// payload was decoded already, so it is valid JSON.
func compact(payload []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, payload); err != nil {
		return bytes.Clone(payload)
	}
	return b.Bytes()
}

// DecodeStatus checks a status message.
func DecodeStatus(payload []byte) (record.Status, error) {
	var s record.Status
	if err := json.Unmarshal(payload, &s); err != nil {
		return record.Status{}, fmt.Errorf("status: not a status message: %w", err)
	}
	if s.V != record.Version {
		return record.Status{}, fmt.Errorf("status: unsupported version %d", s.V)
	}
	if !record.ValidID(s.Device) {
		return record.Status{}, fmt.Errorf("status: device: invalid id %q", s.Device)
	}
	if s.Epoch != "" && !record.ValidID(s.Epoch) {
		return record.Status{}, fmt.Errorf("status: epoch: invalid id %q", s.Epoch)
	}
	return s, nil
}
