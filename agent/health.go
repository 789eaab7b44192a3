package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/uplink"
	"github.com/hallrate/hallrate/voice"
)

// reprobeEvery paces the write that checks whether a failed outbox can be
// written again: each probe is a commit with fsync, and a full disk can
// last for hours.
const reprobeEvery = 5 * time.Second

// Health says whether the terminal can record presses: the input driver is
// running and the outbox answers. A broker that cannot be reached is not a
// health problem: the outbox exists for that.
type Health struct {
	InputRunning bool `json:"input_running"`
	OutboxOK     bool `json:"outbox_ok"`
	// Problems says in words what is wrong; empty when healthy.
	Problems []string `json:"problems,omitempty"`
}

// OK reports whether nothing is wrong.
func (h Health) OK() bool { return len(h.Problems) == 0 }

// Health returns the terminal's health. The outbox is unhealthy from a
// failed write (a press, or saving the ticket state) or a failed read
// probe until a later write succeeds.
func (a *Agent) Health() Health {
	h := Health{InputRunning: a.inputRunning.Load()}
	if !h.InputRunning {
		h.Problems = append(h.Problems, "input driver not running")
	}
	a.mu.Lock()
	outboxErr := a.outboxErr
	a.mu.Unlock()
	h.OutboxOK = outboxErr == nil
	if outboxErr != nil {
		h.Problems = append(h.Problems, "outbox: "+outboxErr.Error())
	}
	return h
}

// noteOutbox records the outcome of a write to the outbox, or of a probe.
func (a *Agent) noteOutbox(err error) {
	a.mu.Lock()
	was := a.outboxErr
	a.outboxErr = err
	a.mu.Unlock()
	switch {
	case err != nil && was == nil:
		a.log.Error("outbox unhealthy", "err", err)
	case err == nil && was != nil:
		a.log.Info("outbox healthy again")
	}
}

// probeOutbox runs on the main loop's tick. A healthy outbox gets a read
// (a closed or vanished database fails it); one whose last write failed
// gets a paced write of the binding state, which is what tells that the
// disk has room again.
func (a *Agent) probeOutbox() {
	a.mu.Lock()
	failed := a.outboxErr != nil
	a.mu.Unlock()
	if !failed {
		if _, err := a.outbox.State(); err != nil {
			a.noteOutbox(fmt.Errorf("read probe: %w", err))
		}
		return
	}
	now := a.clock.Now()
	if now.Sub(a.lastReprobe) < reprobeEvery {
		return
	}
	a.lastReprobe = now
	if err := a.outbox.SaveState(a.binding.Snapshot()); err != nil {
		a.mu.Lock()
		a.outboxErr = fmt.Errorf("write probe: %w", err)
		a.mu.Unlock()
		return
	}
	a.noteOutbox(nil)
}

// heartbeat runs on every turn of the main loop's tick, so a loop that is
// stuck stops it as surely as an unhealthy part does.
func (a *Agent) heartbeat() {
	a.probeOutbox()
	if a.beat != nil {
		a.beat(a.Health())
	}
}

// Snapshot is everything the agent can say about itself at one moment, for
// the local status endpoint and metrics.
type Snapshot struct {
	Device, Hall, Counter, Version string

	Health    Health
	Connected bool
	Uplink    uplink.Stats
	Counters  Counters

	Epoch       string
	Pending     int64
	LastSeq     uint64
	OutboxFull  bool
	MaxRecords  int64
	OutboxBytes int64 // -1 when the outbox cannot tell
	// Unconfirmed are records the broker acknowledged that the hall has not
	// yet said it stored; UnconfirmedDropped left the outbox so (an alarm).
	Unconfirmed, UnconfirmedDropped int64
	// OldestPending is the age of the oldest record not yet acknowledged
	// (zero when none is pending).
	OldestPending time.Duration

	Ticket *record.TicketRef

	ClockSynced bool
	BootID      string
	Uptime      time.Duration
	At          time.Time

	// Input is the driver's view of its wiring; nil when the driver does
	// not watch it.
	Input *device.Health
	// Voice is the prompt player's counts; nil when the terminal is silent.
	Voice *voice.Stats
}

// voiceStats is implemented by speakers that count what they played.
type voiceStats interface{ Stats() voice.Stats }

// sizer is implemented by outboxes that know their size on disk.
type sizer interface{ Size() int64 }

// keeper is implemented by outboxes that keep acknowledged records until
// the hall confirms them.
type keeper interface {
	Unconfirmed() (waiting, dropped int64)
}

// Snapshot returns the agent's current state. It is safe to call from any
// goroutine.
func (a *Agent) Snapshot() Snapshot {
	s := Snapshot{
		Device: a.cfg.Device, Hall: a.cfg.Hall, Counter: a.cfg.Counter, Version: a.cfg.Version,
		Health:      a.Health(),
		Connected:   a.uplink.Connected(),
		Uplink:      a.uplink.Stats(),
		Counters:    a.Counters(),
		Epoch:       a.outbox.Epoch(),
		Pending:     a.outbox.Len(),
		LastSeq:     a.outbox.LastSeq(),
		OutboxFull:  a.full.Load(),
		MaxRecords:  a.cfg.MaxRecords,
		OutboxBytes: -1,
		Ticket:      a.Ticket(),
		ClockSynced: a.clock.Synced(),
		BootID:      a.clock.BootID(),
		Uptime:      a.clock.Uptime(),
		At:          a.clock.Now(),
	}
	if sz, ok := a.outbox.(sizer); ok {
		s.OutboxBytes = sz.Size()
	}
	if k, ok := a.outbox.(keeper); ok {
		s.Unconfirmed, s.UnconfirmedDropped = k.Unconfirmed()
	}
	if s.Pending > 0 {
		// An unreadable oldest record leaves the age at zero; the outbox
		// health says why.
		s.OldestPending, _ = a.oldestPending(s.BootID, s.Uptime, s.At)
	}
	if vs, ok := a.voice.(voiceStats); ok {
		st := vs.Stats()
		s.Voice = &st
	}
	if hr, ok := a.source.(device.HealthReporter); ok {
		h := hr.Health()
		s.Input = &h
	}
	return s
}

// oldestPending measures the age of the oldest pending record. Within one
// boot it uses the uptime carried in the record, which no clock step can
// disturb; a record from an earlier boot falls back to its wall clock time.
func (a *Agent) oldestPending(bootID string, uptime time.Duration, now time.Time) (time.Duration, error) {
	es, err := a.outbox.Pending(0, 1)
	if err != nil {
		return 0, err
	}
	if len(es) == 0 {
		return 0, nil
	}
	var p struct {
		PressedAt string `json:"pressed_at"`
		BootID    string `json:"boot_id"`
		UptimeMS  int64  `json:"uptime_ms"`
	}
	if err := json.Unmarshal(es[0].Data, &p); err != nil {
		return 0, fmt.Errorf("decode record %d: %w", es[0].Seq, err)
	}
	if p.BootID != "" && p.BootID == bootID {
		return max(uptime-time.Duration(p.UptimeMS)*time.Millisecond, 0), nil
	}
	at, err := time.Parse(time.RFC3339Nano, p.PressedAt)
	if err != nil {
		return 0, errors.New("record has no readable pressed_at")
	}
	return max(now.Sub(at), 0), nil
}
