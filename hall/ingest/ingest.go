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
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/record"
	"github.com/jonboulle/clockwork"
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

// ExportLog is where the store keeps the records not yet exported.
type ExportLog interface {
	PendingExports(ctx context.Context, owner string, n int) ([]store.PendingExport, error)
	ClearExports(ctx context.Context, owner string, ids []string) error
}

// Config configures an [Ingester].
type Config struct {
	// Prefix is the topic prefix, such as "hallrate/v1".
	Prefix string
	Store  Saver
	// Export, when set, gets every newly stored record as one JSON line.
	Export Sink
	// Exports and ExportOwner, when set with Export, make the export
	// complete: each record is marked pending for ExportOwner in the
	// commit that stores it, cleared once Export has it, and replayed by
	// [Ingester.ReplayExports] after a crash in between.
	Exports     ExportLog
	ExportOwner string
	// Location is the hall's time zone: service days are its dates.
	Location *time.Location
	// DueDate returns the date a follow-up of a bad rating pressed at t is
	// due, 2006-01-02. Nil opens no follow-ups.
	DueDate func(pressed time.Time) string
	Logger  *slog.Logger
	Clock   clockwork.Clock
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
	// ReasonWait is how long the evaluation and the alert of a counted 差评
	// wait for its reason record: the terminals' reason window plus a
	// margin. Zero does not wait.
	ReasonWait time.Duration
	// OnTrust is told of every record stored flagged and of every chain
	// break and conflicting copy found. It must return promptly.
	OnTrust func(id, reason string)
	// FirstKeys are the keys devices announced first, as the store kept
	// them ([store.DB.FirstKeys]): without a trusted key, the first key
	// seen decides (trust on first use), across restarts.
	FirstKeys map[string]ed25519.PublicKey
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
	// Refused counts the messages that broke the field rules, DBRefused
	// those the database refused on their own, Parked the messages
	// parked (both kinds).
	Refused, DBRefused, Parked int64
}

// Ingester stores the records of a stream of messages. Its methods are
// safe for concurrent use.
type Ingester struct {
	cfg Config
	log *slog.Logger

	stored, duplicates, malformed, mismatched, statuses, followups, gaps, filled atomic.Int64
	verified, unverified, flagged, chainBreaks, conflicts, keyMismatches         atomic.Int64
	refused, dbRefused, parked                                                   atomic.Int64

	mu sync.Mutex
	// announced are the keys devices published in their statuses.
	announced map[string]ed25519.PublicKey
	// logged is when a refused message of each counter was last logged.
	logged map[string]time.Time
	// stuckSince is when the store began refusing every batch (zero while
	// ingest moves); stuckErr the last error.
	stuckSince time.Time
	stuckErr   string
}

// New returns an ingester.
func New(cfg Config) (*Ingester, error) {
	if cfg.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
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
	in := &Ingester{cfg: cfg, log: cfg.Logger, announced: map[string]ed25519.PublicKey{}, logged: map[string]time.Time{}}
	for d, k := range cfg.FirstKeys {
		in.announced[d] = k
	}
	return in, nil
}

// Stats returns the counters.
func (in *Ingester) Stats() Stats {
	return Stats{
		Stored: in.stored.Load(), Duplicates: in.duplicates.Load(), Malformed: in.malformed.Load(),
		Mismatched: in.mismatched.Load(), Statuses: in.statuses.Load(), Followups: in.followups.Load(),
		Gaps: in.gaps.Load(), Filled: in.filled.Load(),
		Verified: in.verified.Load(), Unverified: in.unverified.Load(), Flagged: in.flagged.Load(),
		ChainBreaks: in.chainBreaks.Load(), Conflicts: in.conflicts.Load(), KeyMismatches: in.keyMismatches.Load(),
		Refused: in.refused.Load(), DBRefused: in.dbRefused.Load(), Parked: in.parked.Load(),
	}
}

// Handle decodes a batch of messages and stores it in one transaction.
// Messages that cannot be decoded and records already stored are logged and
// counted, never an error: the caller may acknowledge the whole batch once
// Handle returns nil. A message that breaks the field rules is refused on
// its own and parked (kept aside, see [store.Parked]). When the database
// refuses the batch, Handle splits it and stores message by message, and
// parks a message the database still refuses on its own, so one message
// never holds back the others. An error means the store failed (even the
// parking) and nothing of the batch may be acknowledged.
func (in *Ingester) Handle(ctx context.Context, msgs []Message) error {
	now := in.cfg.Clock.Now()
	items := make([]item, 0, len(msgs))
	for _, m := range msgs {
		if it, ok := in.decode(m, now); ok {
			items = append(items, it)
		}
	}
	err := in.save(ctx, items)
	if err != nil && len(items) > 0 {
		if len(items) > 1 {
			in.log.Warn("batch refused by the store: storing message by message", "messages", len(items), "err", err)
		}
		err = nil
		for _, it := range items {
			if err = in.saveAlone(ctx, it, now); err != nil {
				break
			}
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if err != nil {
		if in.stuckSince.IsZero() {
			in.stuckSince = now
		}
		in.stuckErr = err.Error()
		return err
	}
	in.stuckSince, in.stuckErr = time.Time{}, ""
	return nil
}

// item is what one message adds to a batch: a record, a status, or the
// message itself parked.
type item struct {
	msg    Message
	rating *store.Rating
	status *store.StatusUpdate
	parked *store.Parked
}

// decode turns a message into what it adds to a batch; false when it adds
// nothing.
func (in *Ingester) decode(m Message, now time.Time) (item, bool) {
	t, err := ParseTopic(in.cfg.Prefix, m.Topic)
	if err != nil {
		in.malformedMsg(m, err)
		return item{}, false
	}
	switch t.Kind {
	case "rating":
		r, err := in.rating(t, m.Payload, now)
		if err != nil {
			return in.refuse(m, t, err, now)
		}
		return item{msg: m, rating: &r}, true
	case "status":
		s, err := DecodeStatus(m.Payload)
		if err != nil {
			return in.refuse(m, t, err, now)
		}
		in.announce(s)
		return item{msg: m, status: &store.StatusUpdate{Hall: t.Hall, Counter: t.Counter, Status: s,
			Raw: compact(m.Payload), ReceivedMS: now.UnixMilli()}}, true
	}
	in.malformedMsg(m, fmt.Errorf("topic %q: not a rating or status topic", m.Topic))
	return item{}, false
}

// refuse handles a message that cannot be used: one that breaks the field
// rules is parked, any other is malformed.
func (in *Ingester) refuse(m Message, t Topic, err error, now time.Time) (item, bool) {
	if !record.IsRule(err) {
		in.malformedMsg(m, err)
		return item{}, false
	}
	n := in.refused.Add(1)
	if in.once(t.Hall+"/"+t.Counter, now) {
		in.log.Warn("message breaks the field rules: refused and parked", "topic", m.Topic, "err", err,
			"bytes", len(m.Payload), "refused_total", n)
	}
	p := parkedOf(m, "refused: "+err.Error(), now)
	return item{msg: m, parked: &p}, true
}

func parkedOf(m Message, reason string, now time.Time) store.Parked {
	return store.Parked{Topic: m.Topic, Payload: m.Payload, Reason: reason, ReceivedMS: now.UnixMilli()}
}

// saveAlone stores one message on its own. When the database refuses it
// twice, the message is parked instead: if the parking succeeds the
// database works and it is the message it refuses.
func (in *Ingester) saveAlone(ctx context.Context, it item, now time.Time) error {
	err := in.save(ctx, []item{it})
	if err == nil || it.parked != nil {
		return err
	}
	// Once more: a deadlock or a serialization failure passes.
	if err = in.save(ctx, []item{it}); err == nil {
		return nil
	}
	p := parkedOf(it.msg, "refused by the database: "+err.Error(), now)
	if perr := in.save(ctx, []item{{msg: it.msg, parked: &p}}); perr != nil {
		return err
	}
	n := in.dbRefused.Add(1)
	t, _ := ParseTopic(in.cfg.Prefix, it.msg.Topic)
	if in.once(t.Hall+"/"+t.Counter, now) {
		in.log.Error("message refused by the database: parked", "topic", it.msg.Topic, "err", err,
			"bytes", len(it.msg.Payload), "db_refused_total", n)
	}
	return nil
}

// once reports whether a message about key may be logged now: once per
// key per minute, so a flood cannot fill the disk.
func (in *Ingester) once(key string, now time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if last, ok := in.logged[key]; ok && now.Sub(last) < time.Minute {
		return false
	}
	if len(in.logged) >= 1024 {
		for k, t := range in.logged {
			if now.Sub(t) >= time.Minute {
				delete(in.logged, k)
			}
		}
	}
	in.logged[key] = now
	return true
}

// Stuck returns since when the store has refused every batch, and the last
// error; zero while ingest moves.
func (in *Ingester) Stuck() (since time.Time, err string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stuckSince, in.stuckErr
}

// save stores the items in one transaction and reports what was stored.
func (in *Ingester) save(ctx context.Context, items []item) error {
	b := store.Batch{HoldUnverified: in.cfg.HoldUnverified}
	if in.exportLogged() {
		b.ExportOwner = in.cfg.ExportOwner
	}
	for _, it := range items {
		switch {
		case it.rating != nil:
			b.Ratings = append(b.Ratings, *it.rating)
		case it.status != nil:
			b.Statuses = append(b.Statuses, *it.status)
		case it.parked != nil:
			b.Parked = append(b.Parked, *it.parked)
		}
	}
	ratings := len(b.Ratings)
	saved, err := in.cfg.Store.SaveBatch(ctx, b)
	if err != nil {
		return fmt.Errorf("ingest: store %d records and %d statuses: %w", len(b.Ratings), len(b.Statuses), err)
	}
	in.parked.Add(int64(len(b.Parked)))
	in.statuses.Add(int64(len(b.Statuses)))
	for _, st := range b.Statuses {
		in.cfg.OnStatus(st)
	}
	in.duplicates.Add(int64(ratings - len(saved.New)))
	// A record that replaced a lower ranked copy is exported, shown and
	// counted like a new one: it is new as the stored rating.
	stored := append(slices.Clone(saved.New), saved.Replaced...)
	if in.cfg.Export != nil && len(stored) > 0 {
		lines := make([][]byte, len(stored))
		ids := make([]string, len(stored))
		for i, r := range stored {
			lines[i], ids[i] = r.Raw, r.ID
		}
		// The store holds the records; the export is a copy, and a
		// failing copy must not hold back the broker: what it misses stays
		// pending in the store and is replayed.
		if err := in.cfg.Export.Append(lines); err != nil {
			in.log.Error("export records", "err", err, "records", len(lines))
		} else if in.exportLogged() {
			if err := in.cfg.Exports.ClearExports(ctx, in.cfg.ExportOwner, ids); err != nil {
				in.log.Error("export records: not cleared in the store; they will be written again", "err", err, "records", len(ids))
			}
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
	for _, r := range saved.Replaced {
		in.cfg.OnRating(r)
	}
	if len(stored) > 0 {
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
	rank := store.RankUnproven
	switch {
	case v.State == trust.Flagged:
		rank = store.RankFlagged
	case v.State == trust.Verified:
		rank = store.RankVerified
	case slices.Contains(v.Reasons, trust.TOFU):
		rank = store.RankTOFU
	}
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
		Rank:     rank,
		StoredMS: now.UnixMilli(),
	}
	// A rating the hall does not accept opens no follow-up: a forged 差评
	// must not set staff to work.
	if p.Disposition == record.Counted && p.Satisfaction <= 2 && in.cfg.ReasonWait > 0 {
		// Counted from when the record was pressed, so a record that was
		// held up on its way does not hold the evaluation up for longer.
		r.ReasonDueMS = min(pressed.Add(in.cfg.ReasonWait).UnixMilli(), now.Add(in.cfg.ReasonWait).UnixMilli())
	}
	if p.Disposition == record.Counted && p.Satisfaction <= 2 && in.cfg.DueDate != nil && !r.Hold {
		r.Followup = in.followup(p, in.cfg.DueDate(local), now)
		r.Followup.ReasonDueMS = r.ReasonDueMS
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
	// ReasonCode and ReasonText are added when the alert is published, if
	// the citizen gave a reason by then ([store.Followup.AlertMessage]).
	ReasonCode string `json:"reasonCode,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
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
	if throttle.Refusals().Log(int64(n)) {
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
	if old == nil {
		in.announced[s.Device] = k
	}
	in.mu.Unlock()
	d, ok := in.cfg.Keys.Device(s.Device)
	if (!ok || d.Key == nil) && old != nil && !old.Equal(k) {
		// Trust on first use: the first key seen decides; a status on a
		// topic anyone may write must not take a device over.
		in.keyMismatches.Add(1)
		in.log.Error("device announces another key than the first it announced: trust on first use keeps the first",
			"device", s.Device, "announced", s.PubKey, "first", record.EncodePublicKey(old))
		return
	}
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
		if e.Kind == store.ReasonReplaced {
			msg = "stored copy replaced by a higher ranked copy of its id (a verified record wins); the stored one is kept as evidence"
		}
		if e.JoinState == store.Joined {
			msg += " (its evaluation was made already: withdrawn if it had not left, else held for the duty manager as " + store.Correction + ")"
		}
		in.alarm(msg, e.ID, e.Kind, "device", e.Device, "epoch", e.Epoch, "seq", e.Seq)
	}
}

func (in *Ingester) alarm(msg, id, reason string, kv ...any) {
	n := in.flagged.Load() + in.chainBreaks.Load() + in.conflicts.Load()
	if (throttle.Every{First: 100, Nth: 100}).Log(int64(n)) {
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

func (in *Ingester) exportLogged() bool {
	return in.cfg.Export != nil && in.cfg.Exports != nil && in.cfg.ExportOwner != ""
}

// ReplayExports writes to the export the records stored and not yet
// written there (a crash between the commit and the write, or a failing
// file) and returns how many. A record may then appear twice in the file
// (a crash between the write and its clearing): consumers de-duplicate on
// the record's id.
func (in *Ingester) ReplayExports(ctx context.Context) (int, error) {
	if !in.exportLogged() {
		return 0, nil
	}
	n := 0
	for {
		es, err := in.cfg.Exports.PendingExports(ctx, in.cfg.ExportOwner, 1000)
		if err != nil || len(es) == 0 {
			return n, err
		}
		lines := make([][]byte, len(es))
		ids := make([]string, len(es))
		for i, e := range es {
			lines[i], ids[i] = e.Raw, e.ID
		}
		if err := in.cfg.Export.Append(lines); err != nil {
			return n, fmt.Errorf("ingest: replay exports: %w", err)
		}
		if err := in.cfg.Exports.ClearExports(ctx, in.cfg.ExportOwner, ids); err != nil {
			return n, fmt.Errorf("ingest: replay exports: %w", err)
		}
		n += len(es)
	}
}
