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
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/trust"
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
	// Keys is the hall's device inventory, from the trusted keys file.
	// Nil verifies nothing: every record is stored unverified.
	Keys *trust.Inventory
	// HoldUnverified keeps unverified counted ratings out of joins,
	// scores and evaluations, as flagged ones always are.
	HoldUnverified bool
	// OnTrust is told of every record stored flagged and of every chain
	// break and conflicting copy found. It must return promptly.
	OnTrust func(id, reason string)
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
	// Verified, Unverified and Flagged count new records by trust state
	// as stored; ChainBreaks and Conflicts the store's findings (which
	// may flag a record stored before); KeyMismatches the statuses that
	// announced another key than the trusted one.
	Verified, Unverified, Flagged         int64
	ChainBreaks, Conflicts, KeyMismatches int64
}

// Ingester stores the records of a stream of messages. Its methods are
// safe for concurrent use.
type Ingester struct {
	cfg Config
	log *slog.Logger

	stored, duplicates, malformed, mismatched, statuses, followups, gaps, filled atomic.Int64
	verified, unverified, flagged, chainBreaks, conflicts, keyMismatches         atomic.Int64

	mu sync.Mutex
	// announced are the keys devices published in their statuses.
	announced map[string]ed25519.PublicKey
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
	if cfg.OnTrust == nil {
		cfg.OnTrust = func(string, string) {}
	}
	return &Ingester{cfg: cfg, log: cfg.Logger, announced: map[string]ed25519.PublicKey{}}, nil
}

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	return Stats{
		Stored: in.stored.Load(), Duplicates: in.duplicates.Load(), Malformed: in.malformed.Load(),
		Mismatched: in.mismatched.Load(), Statuses: in.statuses.Load(), Followups: in.followups.Load(),
		Gaps: in.gaps.Load(), Filled: in.filled.Load(),
		Verified: in.verified.Load(), Unverified: in.unverified.Load(), Flagged: in.flagged.Load(),
		ChainBreaks: in.chainBreaks.Load(), Conflicts: in.conflicts.Load(), KeyMismatches: in.keyMismatches.Load(),
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
			in.announce(s)
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
	in.trustFindings(saved)
	for _, r := range saved.New {
		in.stored.Add(1)
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
	in.mu.Lock()
	announced := in.announced[p.Device]
	in.mu.Unlock()
	v := trust.Check(in.cfg.Keys, &p, announced)
	if p.Hall != t.Hall || p.Counter != t.Counter {
		// The topic is not signed, so this proves no forgery; but the ACL
		// should have stopped it, and it is not verified.
		if v.State == trust.Verified {
			v.State = trust.Unverified
		}
		v.Reasons = append(v.Reasons, trust.WrongTopic)
	}
	r := store.Rating{
		Press: p, Raw: compact(payload), PressedMS: pressed.UnixMilli(),
		ServiceDay: local.Format(time.DateOnly),
		Verified:   v.State == trust.Verified,
		Trust:      string(v.State), TrustReason: v.Reason(),
		Hold:     v.State == trust.Flagged || (v.State == trust.Unverified && in.cfg.HoldUnverified),
		StoredMS: now.UnixMilli(),
	}
	// A rating the hall does not accept opens no follow-up: a forged 差评
	// must not set staff to work.
	if p.Disposition == record.Counted && p.Satisfaction <= 2 && in.cfg.DueDate != nil && !r.Hold {
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

// DecodeStatus checks a status message; see [record.DecodeStatus].
func DecodeStatus(payload []byte) (record.Status, error) { return record.DecodeStatus(payload) }

// announce notes the key a device announced in its status, for trust on
// first use, and alarms when it is not the key the hall trusts.
func (in *Ingester) announce(s record.Status) {
	if s.PubKey == "" {
		return
	}
	k, err := record.DecodePublicKey(s.PubKey)
	if err != nil {
		in.log.Warn("status carries a pubkey that is not an ed25519 key", "device", s.Device)
		return
	}
	in.mu.Lock()
	old := in.announced[s.Device]
	in.announced[s.Device] = k
	in.mu.Unlock()
	d, ok := in.cfg.Keys.Device(s.Device)
	if !ok || d.Key == nil || d.Key.Equal(k) || old.Equal(k) {
		return
	}
	// Logged once per key announced, not once per status refresh.
	in.keyMismatches.Add(1)
	in.log.Error("device announces another key than the trusted one: its records will fail verification",
		"device", s.Device, "announced", s.PubKey, "trusted", record.EncodePublicKey(d.Key))
}

// trustFindings counts and reports the verification state of a batch's
// new records and the store's findings. Flagged records are alarms: each
// is logged, up to a limit that keeps a flood from filling the disk.
func (in *Ingester) trustFindings(saved store.Saved) {
	for _, r := range saved.New {
		if slices.Contains(strings.Split(r.TrustReason, ","), trust.WrongTopic) {
			in.mismatched.Add(1)
			in.log.Warn("record published on another counter's topic", "id", r.ID, "hall", r.Hall, "counter", r.Counter)
		}
		switch r.Trust {
		case store.TrustVerified:
			in.verified.Add(1)
		case store.TrustFlagged:
			in.flagged.Add(1)
			in.alarm("record failed verification: kept, flagged and left out of scores",
				r.ID, r.TrustReason, "hall", r.Hall, "counter", r.Counter, "join_state", joinOf(r))
		default:
			in.unverified.Add(1)
		}
	}
	for _, e := range saved.Trust {
		switch e.Kind {
		case store.ReasonChainBreak:
			in.chainBreaks.Add(1)
		case store.ReasonConflict:
			in.conflicts.Add(1)
		}
		if isNewIn(saved.New, e.ID) {
			continue // reported with the record above
		}
		msg := "stored record flagged: " + e.Kind
		if e.JoinState == store.Joined {
			msg += " (its evaluation was made already)"
		}
		in.alarm(msg, e.ID, e.Kind, "device", e.Device, "epoch", e.Epoch, "seq", e.Seq)
	}
}

func (in *Ingester) alarm(msg, id, reason string, kv ...any) {
	n := in.flagged.Load() + in.chainBreaks.Load() + in.conflicts.Load()
	if n <= 100 || n%100 == 0 {
		in.log.Error(msg, append([]any{"id", id, "reason", reason}, kv...)...)
	}
	in.cfg.OnTrust(id, reason)
}

func joinOf(r store.Rating) string {
	if r.Disposition != record.Counted {
		return ""
	}
	if r.Hold {
		return store.Excluded
	}
	return store.Waiting
}

func isNewIn(rs []store.Rating, id string) bool {
	return slices.ContainsFunc(rs, func(r store.Rating) bool { return r.ID == id })
}
