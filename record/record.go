// Package record defines the messages that cross the broker between a rating
// terminal and the hall side: press records, status messages and ticket
// messages. Both the agent and the collector import it, so the wire format
// lives in exactly one place.
package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Version is the payload version carried as "v" in every message.
const Version = 1

// TimeLayout is how pressed_at and other timestamps are written:
// RFC 3339 with milliseconds and the local offset.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// MaxTicketPayload bounds the size of a ticket message the agent will parse.
const MaxTicketPayload = 4096

// Disposition says how a press counts toward the ticket's rating.
type Disposition string

// The dispositions of the contract, in the order the binding checks them.
const (
	NoTicket Disposition = "no_ticket"
	Repeat   Disposition = "repeat"
	Late     Disposition = "late"
	Counted  Disposition = "counted"
)

// Valid reports whether d is one of the four contract dispositions.
func (d Disposition) Valid() bool {
	switch d {
	case NoTicket, Repeat, Late, Counted:
		return true
	}
	return false
}

// TicketState is the state field of a ticket message.
type TicketState string

// Ticket states published by the queue system.
const (
	Serving TicketState = "serving"
	Done    TicketState = "done"
	Idle    TicketState = "idle"
)

// Ticket sources: where the episode of a record's ticket came from.
const (
	// SourceQueue is a ticket message of the hall's queue system (by MQTT,
	// the collector's HTTP gateway or its SQL poller). Old records carry
	// no source, which means queue.
	SourceQueue = "queue"
	// SourceStaff is an episode opened by the staff key on the terminal.
	SourceStaff = "staff"
)

// TicketRef is the ticket a press was bound to, as carried in the record.
type TicketRef struct {
	ID        string      `json:"id"`
	State     TicketState `json:"state"`
	Staff     string      `json:"staff,omitempty"`
	Item      string      `json:"item,omitempty"`
	ProjectNo string      `json:"projectNo,omitempty"`
	// Source is SourceQueue or SourceStaff; empty (old records) means
	// queue.
	Source string `json:"source,omitempty"`
}

// FromStaffKey reports whether the ticket's episode was opened by the
// staff key rather than a queue system.
func (t *TicketRef) FromStaffKey() bool { return t != nil && t.Source == SourceStaff }

// Kind says what a record is. A record without one is a rating.
type Kind string

// The kinds of record.
const (
	// KindRating is a press that rates the service; "" means the same.
	KindRating Kind = "rating"
	// KindReason is the reason given for a 差评 (a rating at one of the
	// levels that ask for one): the press after that rating, within the
	// reason window. It is never counted as a rating.
	KindReason Kind = "reason"
)

// ReasonRef is the reason a citizen gave for a 差评.
type ReasonRef struct {
	// Code is of [A-Za-z0-9._-]{1,64}, such as "attitude".
	Code string `json:"code"`
	// Label is the text the terminal offers, such as 服务态度: at most
	// MaxNameText bytes.
	Label string `json:"label"`
}

// Press is one button press as published on the rating topic: a rating,
// or (Kind "reason") the reason given for the rating named by For.
//
// Label, Satisfaction and Disposition are those of a rating and absent from
// a reason record; For and Reason are those of a reason and absent from a
// rating, so a rating reads as it always has.
type Press struct {
	V            int         `json:"v"`
	Kind         Kind        `json:"kind,omitempty"`
	ID           string      `json:"id"`
	Device       string      `json:"device"`
	Hall         string      `json:"hall"`
	Counter      string      `json:"counter"`
	Epoch        string      `json:"epoch"`
	Seq          uint64      `json:"seq"`
	Button       int         `json:"button"`
	Label        string      `json:"label,omitempty"`
	Satisfaction int         `json:"satisfaction,omitempty"`
	Disposition  Disposition `json:"disposition,omitempty"`
	// For is the id of the rating a reason belongs to.
	For string `json:"for,omitempty"`
	// Reason is the reason the citizen chose.
	Reason      *ReasonRef `json:"reason,omitempty"`
	Ticket      *TicketRef `json:"ticket"`
	PressedAt   string     `json:"pressed_at"`
	ClockSynced bool       `json:"clock_synced"`
	BootID      string     `json:"boot_id"`
	UptimeMS    int64      `json:"uptime_ms"`
	// Prev is the [Press.ChainHash] of the previous record of the epoch
	// ("" for seq 1), SigV the version of the signed message (absent: 1)
	// and Sig the device's signature; see [Press.SignedMessage].
	Prev string `json:"prev"`
	SigV int    `json:"sigv,omitempty"`
	Sig  string `json:"sig,omitempty"`

	// raw is the payload a decoded record came from, and decoded its
	// fields as they were then, marshalled: a version 2 signature covers
	// members this build does not know, as long as no field was changed.
	raw, decoded []byte
}

// PressID builds the record id {device}:{epoch}:{seq}.
func PressID(device, epoch string, seq uint64) string {
	return fmt.Sprintf("%s:%s:%d", device, epoch, seq)
}

// DecodePress parses and checks a press record. It is strict about the
// fields a consumer de-duplicates and audits on, and tolerant of fields it
// does not know, so newer agents can add some; every text and number obeys
// the rules of [CheckPayload] and [PressLimit] (a breach is a [RuleError]).
func DecodePress(payload []byte) (Press, error) {
	if err := CheckPayload(payload, MaxRecordPayload, PressLimit); err != nil {
		return Press{}, fmt.Errorf("record: %w", err)
	}
	var p Press
	if err := json.Unmarshal(payload, &p); err != nil {
		return Press{}, fmt.Errorf("record: %w", typeError("not a press record", err))
	}
	if p.V != Version {
		return Press{}, fmt.Errorf("record: unsupported version %d", p.V)
	}
	for _, f := range []struct{ name, val string }{
		{"device", p.Device}, {"hall", p.Hall}, {"counter", p.Counter}, {"epoch", p.Epoch},
	} {
		if !ValidID(f.val) {
			return Press{}, fmt.Errorf("record: %s: invalid id %q", f.name, f.val)
		}
	}
	if want := PressID(p.Device, p.Epoch, p.Seq); p.ID != want {
		return Press{}, fmt.Errorf("record: id: %q does not match device, epoch and seq (%q)", p.ID, want)
	}
	if p.Ticket != nil {
		switch p.Ticket.Source {
		case "", SourceQueue, SourceStaff:
		default:
			return Press{}, fmt.Errorf("record: ticket.source: unknown %q", p.Ticket.Source)
		}
	}
	switch p.Kind {
	case "", KindRating:
		if err := p.checkRating(); err != nil {
			return Press{}, err
		}
	case KindReason:
		if err := p.checkReason(); err != nil {
			return Press{}, err
		}
	default:
		return Press{}, fmt.Errorf("record: kind: unknown %q", p.Kind)
	}
	if _, err := time.Parse(time.RFC3339Nano, p.PressedAt); err != nil {
		return Press{}, fmt.Errorf("record: pressed_at: %w", err)
	}
	switch p.SigV {
	case 0:
	case SigV2:
		p.raw = bytes.Clone(payload)
		var err error
		if p.decoded, err = json.Marshal(p); err != nil {
			return Press{}, fmt.Errorf("record: %w", err)
		}
		if _, err := p.SignedMessage(); err != nil {
			return Press{}, fmt.Errorf("record: sigv 2: %w", err)
		}
	default:
		return Press{}, fmt.Errorf("record: sigv: unsupported version %d", p.SigV)
	}
	return p, nil
}

func (p *Press) checkRating() error {
	if !p.Disposition.Valid() {
		return fmt.Errorf("record: disposition: unknown %q", p.Disposition)
	}
	if (p.Disposition == NoTicket) != (p.Ticket == nil) {
		return errors.New("record: ticket: must be null exactly when disposition is no_ticket")
	}
	if err := checkPressNumbers(p); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if p.For != "" || p.Reason != nil {
		return errors.New("record: for and reason belong to a reason record, not a rating")
	}
	return nil
}

func (p *Press) checkReason() error {
	if err := checkReasonNumbers(p); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if p.Disposition != "" || p.Satisfaction != 0 || p.Label != "" {
		return errors.New("record: a reason record has no label, satisfaction or disposition")
	}
	dev, epoch, seq, ok := SplitPressID(p.For)
	if !ok || dev != p.Device || epoch != p.Epoch || seq >= p.Seq {
		return fmt.Errorf("record: for: %q is not an earlier record of the same device and epoch", p.For)
	}
	if p.Reason == nil {
		return errors.New("record: reason: missing")
	}
	if !ValidID(p.Reason.Code) {
		return fmt.Errorf("record: reason.code: %q is not of [A-Za-z0-9._-]{1,64}", p.Reason.Code)
	}
	if err := CheckReasonLabel(p.Reason.Label); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// CheckReasonLabel reports what is wrong with a reason label, or nil: it
// obeys the text rules ([CheckText]), is not empty and is at most
// MaxNameText bytes.
func CheckReasonLabel(s string) error {
	if s == "" {
		return &RuleError{"reason.label", "empty"}
	}
	return CheckText("reason.label", s, MaxNameText)
}

// IsReason reports whether p is a reason record.
func (p *Press) IsReason() bool { return p.Kind == KindReason }

// SplitPressID splits a record id {device}:{epoch}:{seq}.
func SplitPressID(id string) (device, epoch string, seq uint64, ok bool) {
	device, rest, ok1 := strings.Cut(id, ":")
	epoch, n, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || !ValidID(device) || !ValidID(epoch) {
		return "", "", 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	if err != nil || seq == 0 || PressID(device, epoch, seq) != id {
		return "", "", 0, false
	}
	return device, epoch, seq, true
}

// ValidID reports whether s is a device, hall or counter id of the contract's
// charset: [A-Za-z0-9._-]{1,64}. (A loop, not a regexp: the regexp package
// is 150 KB of the agent's armv6 binary.)
func ValidID(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Status is the retained status of a device.
type Status struct {
	V          int     `json:"v"`
	Online     bool    `json:"online"`
	Device     string  `json:"device"`
	Version    string  `json:"version,omitempty"`
	BootID     string  `json:"boot_id,omitempty"`
	Epoch      string  `json:"epoch,omitempty"`
	Pending    *int64  `json:"pending,omitempty"`
	LastSeq    *uint64 `json:"last_seq,omitempty"`
	OutboxFull *bool   `json:"outbox_full,omitempty"`
	// Unconfirmed counts the records the broker acknowledged that the hall
	// has not yet said it stored (kept for the stored acknowledgement).
	Unconfirmed *int64 `json:"unconfirmed,omitempty"`
	PubKey      string `json:"pubkey,omitempty"`
	At          string `json:"at,omitempty"`
	// StoppedAt is set only in the offline status of a clean stop, which
	// also carries epoch, last_seq and pending; the Last Will cannot.
	StoppedAt string `json:"stopped_at,omitempty"`
}

// Stored is the payload of {prefix}/{hall}/{counter}/stored, the hall's
// end-to-end acknowledgement: of the device's epoch, every record up to
// ThroughSeq is stored, and every one above it up to HighestSeq but those
// in Missing (ascending, at most 1,000; when cut there, HighestSeq is the
// last listed). A message without highest_seq (a collector before it was
// added) speaks for ThroughSeq only.
type Stored struct {
	V          int      `json:"v"`
	Device     string   `json:"device"`
	Epoch      string   `json:"epoch"`
	ThroughSeq uint64   `json:"through_seq"`
	HighestSeq uint64   `json:"highest_seq"`
	Missing    []uint64 `json:"missing"`
}

// DecodeStored parses and checks a stored message.
func DecodeStored(payload []byte) (Stored, error) {
	if len(payload) > MaxStoredPayload {
		return Stored{}, fmt.Errorf("stored: payload of %d bytes exceeds %d", len(payload), MaxStoredPayload)
	}
	var s Stored
	if err := json.Unmarshal(payload, &s); err != nil {
		return Stored{}, fmt.Errorf("stored: %w", typeError("not a stored message", err))
	}
	if s.V != Version {
		return Stored{}, fmt.Errorf("stored: unsupported version %d", s.V)
	}
	if !ValidID(s.Device) || !ValidID(s.Epoch) {
		return Stored{}, fmt.Errorf("stored: device or epoch: invalid id %q, %q", s.Device, s.Epoch)
	}
	s.HighestSeq = max(s.HighestSeq, s.ThroughSeq)
	for i, m := range s.Missing {
		if m <= s.ThroughSeq || m > s.HighestSeq || (i > 0 && m <= s.Missing[i-1]) {
			return Stored{}, fmt.Errorf("stored: missing: %d is not ascending between through_seq %d and highest_seq %d", m, s.ThroughSeq, s.HighestSeq)
		}
	}
	return s, nil
}

// MaxStoredPayload bounds a stored message: 1,000 missing seqs of up to
// 20 digits, and the rest.
const MaxStoredPayload = 24 * 1024

// DecodeStatus parses and checks a status message; every text and number
// obeys the rules of [CheckPayload] and [StatusLimit] (a breach is a
// [RuleError]). Unknown fields are ignored.
func DecodeStatus(payload []byte) (Status, error) {
	if err := CheckPayload(payload, MaxRecordPayload, StatusLimit); err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	var s Status
	if err := json.Unmarshal(payload, &s); err != nil {
		return Status{}, fmt.Errorf("status: %w", typeError("not a status message", err))
	}
	if s.V != Version {
		return Status{}, fmt.Errorf("status: unsupported version %d", s.V)
	}
	if !ValidID(s.Device) {
		return Status{}, fmt.Errorf("status: device: invalid id %q", s.Device)
	}
	if s.Epoch != "" && !ValidID(s.Epoch) {
		return Status{}, fmt.Errorf("status: epoch: invalid id %q", s.Epoch)
	}
	if s.Pending != nil {
		if err := CheckInt("pending", *s.Pending, 0, math.MaxInt64); err != nil {
			return Status{}, fmt.Errorf("status: %w", err)
		}
	}
	if s.LastSeq != nil {
		if err := CheckUint("last_seq", *s.LastSeq, 0, MaxSeq); err != nil {
			return Status{}, fmt.Errorf("status: %w", err)
		}
	}
	return s, nil
}

// OfflineStatus is the Last Will payload, also published on a clean stop.
func OfflineStatus(device string) []byte {
	b, _ := json.Marshal(struct {
		V      int    `json:"v"`
		Online bool   `json:"online"`
		Device string `json:"device"`
	}{Version, false, device})
	return b
}

// Ticket is a ticket message from the queue system.
type Ticket struct {
	V         int         `json:"v"`
	Ticket    string      `json:"ticket"`
	State     TicketState `json:"state"`
	Staff     string      `json:"staff"`
	Item      string      `json:"item"`
	ProjectNo string      `json:"projectNo"`
	At        string      `json:"at"`
}

// DecodeTicket parses a ticket message and rejects what the contract calls
// malformed or unsupported, and every text that breaks the rules of
// [CheckPayload] and [TicketLimit], so the agent never signs such a field
// into a record. Unknown fields are ignored. A zero-length message (how
// MQTT clears a retained message) clears the counter: it is an idle
// ticket. "at", when present, must be RFC 3339 with an offset. Every
// error is one line that names the field and what is wrong with it.
func DecodeTicket(payload []byte) (Ticket, error) {
	if len(payload) == 0 {
		return Ticket{V: Version, State: Idle}, nil
	}
	if len(payload) > MaxTicketPayload {
		return Ticket{}, fmt.Errorf("ticket: payload of %d bytes exceeds %d", len(payload), MaxTicketPayload)
	}
	if err := CheckPayload(payload, MaxTicketPayload, TicketLimit); err != nil {
		return Ticket{}, fmt.Errorf("ticket: %w", err)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&fields); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Ticket{}, fmt.Errorf("ticket: not JSON: %v", err)
		}
		return Ticket{}, fmt.Errorf("ticket: not a JSON object but %s", jsonKind(payload))
	}
	if fields == nil {
		return Ticket{}, errors.New("ticket: not a JSON object but null")
	}
	if dec.More() {
		return Ticket{}, errors.New("ticket: trailing data after the JSON object")
	}
	v, ok := fields["v"]
	if !ok {
		return Ticket{}, errors.New("ticket: v: missing")
	}
	var ver int
	if err := json.Unmarshal(v, &ver); err != nil {
		return Ticket{}, fmt.Errorf("ticket: v: not an integer but %s", jsonKind(v))
	}
	if ver != Version {
		return Ticket{}, fmt.Errorf("ticket: v: unsupported version %d", ver)
	}
	t := Ticket{V: ver}
	for _, f := range []struct {
		name string
		to   *string
	}{{"ticket", &t.Ticket}, {"state", (*string)(&t.State)}, {"staff", &t.Staff}, {"item", &t.Item},
		{"projectNo", &t.ProjectNo}, {"at", &t.At}} {
		raw, ok := fields[f.name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, f.to); err != nil {
			return Ticket{}, fmt.Errorf("ticket: %s: not a string but %s", f.name, jsonKind(raw))
		}
	}
	switch t.State {
	case Serving, Done:
		if t.Ticket == "" {
			return Ticket{}, fmt.Errorf("ticket: ticket: missing for state %q", t.State)
		}
	case Idle:
	case "":
		return Ticket{}, errors.New("ticket: state: missing (serving, done or idle)")
	default:
		return Ticket{}, fmt.Errorf("ticket: state: %q is not serving, done or idle", t.State)
	}
	if t.At != "" {
		if _, err := time.Parse(time.RFC3339, t.At); err != nil {
			return Ticket{}, fmt.Errorf("ticket: at: %q is not RFC 3339 with an offset, like 2026-11-24T09:15:00+08:00", t.At)
		}
	}
	return t, nil
}

// jsonKind names the kind of a JSON value for an error message: "a
// string", "a number", "an object", "an array", "true", "false" or "null".
func jsonKind(raw []byte) string {
	b := bytes.TrimLeft(raw, " \t\r\n")
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't':
		return "true"
	case 'f':
		return "false"
	case 'n':
		return "null"
	}
	return "a number"
}
