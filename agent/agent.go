// Package agent runs a rating terminal: it takes presses from an input
// driver, binds each to the counter's ticket, makes it durable in the outbox
// and hands it to the uplink, and it keeps the binding current from the
// ticket messages the uplink brings back.
package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallrate/hallrate/binding"
	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/reasons"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
	"github.com/hallrate/hallrate/uplink"
	"github.com/hallrate/hallrate/voice"
)

// Button is what the agent knows of a button: its label and national code.
type Button struct {
	Label        string
	Satisfaction int
}

// Config configures an [Agent].
type Config struct {
	Device, Hall, Counter string
	Version               string
	Buttons               []Button
	RatingWindow          time.Duration
	// Staff names the staff member of this terminal on the tickets the
	// staff key makes; empty leaves them unnamed.
	Staff string
	// Reasons configures asking for the reason of a 差评; a zero value
	// never asks.
	Reasons reasons.Config
	// MaxRecords is the outbox alarm threshold: past it the agent still
	// records every press, and says the outbox is full.
	MaxRecords int64
	// Uplink is completed by the agent (status, will, link callback).
	Uplink uplink.Config
}

// Parts are the pieces the agent drives.
type Parts struct {
	Outbox   buffer.Outbox
	Source   device.Source
	Feedback device.Feedback
	Clock    sysclock.Clock
	Logger   *slog.Logger
	// Voice speaks the prompts; nil is silent.
	Voice Speaker
	// Key signs every record; nil leaves records unsigned.
	Key ed25519.PrivateKey
	// Heartbeat, when set, is called from the main loop about four times a
	// second with the agent's health; a systemd watchdog is fed from it, so
	// a stuck loop stops the pings as an unhealthy part does. It must return
	// promptly.
	Heartbeat func(Health)
}

// Speaker speaks a prompt. Say must return at once: speaking never delays
// recording.
type Speaker interface {
	Say(voice.Prompt)
}

type silent struct{}

func (silent) Say(voice.Prompt) {}

// Counters are the agent's event counts, for metrics and tests.
type Counters struct {
	Presses map[record.Disposition]int64
	// Reasons counts reason records written.
	Reasons         int64
	WriteFailures   int64
	TicketsApplied  int64
	TicketsRejected int64
	// StaffKeys counts staff-key presses that opened a window, and
	// StaffKeysIgnored those a queue ticket being served overruled.
	StaffKeys        int64
	StaffKeysIgnored int64
}

// Agent is one rating terminal.
type Agent struct {
	cfg      Config
	outbox   buffer.Outbox
	source   device.Source
	feedback device.Feedback
	clock    sysclock.Clock
	log      *slog.Logger
	binding  *binding.Binding
	uplink   *uplink.Uplink
	key      ed25519.PrivateKey
	beat     func(Health)
	asker    *reasons.Asker
	voice    Speaker

	inputRunning atomic.Bool
	lastReprobe  time.Time // main loop only
	// durableAfter is how long the last record took from its press to its
	// commit's return (main loop only; logged with the press).
	durableAfter time.Duration

	full       atomic.Bool
	lastFullAt time.Time
	window     bool
	asking     bool   // main loop only: the LEDs ask for a reason
	invited    uint64 // main loop only: the episode whose window was announced

	mu        sync.Mutex
	counters  Counters
	ticket    *record.TicketRef
	outboxErr error
}

// New restores the binding from the outbox and builds the uplink.
func New(cfg Config, p Parts) (*Agent, error) {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Feedback == nil {
		p.Feedback = device.NoFeedback{}
	}
	if p.Voice == nil {
		p.Voice = silent{}
	}
	snap, err := p.Outbox.State()
	if err != nil {
		return nil, err
	}
	b, err := binding.New(cfg.RatingWindow, p.Clock, snap)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, outbox: p.Outbox, source: p.Source, feedback: p.Feedback,
		clock: p.Clock, log: p.Logger, binding: b, beat: p.Heartbeat, key: p.Key,
		asker: reasons.New(cfg.Reasons, p.Clock.Uptime), voice: p.Voice,
		counters: Counters{Presses: map[record.Disposition]int64{}},
		ticket:   b.Current(),
		// A window already open at start was announced before the restart.
		invited: b.Episode(),
	}
	uc := cfg.Uplink
	uc.Will = record.OfflineStatus(cfg.Device)
	uc.Status = a.status
	uc.OnConnected = p.Feedback.Online
	uc.AcceptTicket = a.acceptTicket
	if uc.Logger == nil {
		uc.Logger = p.Logger
	}
	a.uplink = uplink.New(uc, p.Outbox)
	a.full.Store(p.Outbox.Len() >= cfg.MaxRecords)
	return a, nil
}

// Uplink returns the agent's uplink, for its counters.
func (a *Agent) Uplink() *uplink.Uplink { return a.uplink }

// Counters returns a copy of the event counts.
func (a *Agent) Counters() Counters {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.counters
	c.Presses = make(map[record.Disposition]int64, len(a.counters.Presses))
	for k, v := range a.counters.Presses {
		c.Presses[k] = v
	}
	return c
}

// Ticket returns the current ticket, or nil.
func (a *Agent) Ticket() *record.TicketRef {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ticket
}

// OutboxFull reports whether the outbox is past its alarm threshold.
func (a *Agent) OutboxFull() bool { return a.full.Load() }

// Run drives the terminal until ctx is cancelled. It returns an error only
// when the input driver fails; cancellation is a clean stop, after which
// every record not yet acknowledged is still in the outbox.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	presses := make(chan device.Press, 16)
	srcErr := make(chan error, 1)
	a.inputRunning.Store(true)
	go func() {
		err := a.source.Run(ctx, presses)
		a.inputRunning.Store(false)
		srcErr <- err
	}()
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		// Run returns only when ctx is done.
		_ = a.uplink.Run(ctx)
	}()
	// The uplink stops only when ctx is done: cancel before waiting for it,
	// or a failed input driver would leave Run waiting forever.
	defer func() {
		cancel()
		<-upDone
	}()

	a.feedback.Online(false)
	a.updateWindow()
	a.heartbeat()
	mem := newMemoryReturn(10 * time.Second)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-srcErr:
			if ctx.Err() != nil || err == nil {
				return nil
			}
			return fmt.Errorf("input driver: %w", err)
		case p := <-presses:
			a.press(p)
		case raw := <-a.uplink.Tickets():
			a.applyTicket(raw)
		case <-tick.C:
			a.updateWindow()
			a.heartbeat()
			mem.check(a.clock.Now())
		}
	}
}

func (a *Agent) press(p device.Press) {
	if p.StaffKey {
		a.staffKey()
		return
	}
	if p.Button < 1 || p.Button > len(a.cfg.Buttons) {
		a.log.Warn("press of an unconfigured button ignored", "button", p.Button)
		return
	}
	if r, ok := a.asker.Reason(p.Button); ok {
		a.pressReason(p, r)
		return
	}
	btn := a.cfg.Buttons[p.Button-1]
	out := a.binding.Press()
	id, seq, err := a.append(func(rec *record.Press) {
		rec.Label, rec.Satisfaction = btn.Label, btn.Satisfaction
		rec.Disposition, rec.Ticket = out.Disposition, out.Ticket
	}, p, out.State)
	if err != nil {
		a.failed(p, btn.Label, err)
		return
	}
	a.binding.Commit(out)
	asking := a.asker.Rated(id, out.Disposition, btn.Satisfaction, out.Ticket)
	a.feedback.Recorded(p.Button)
	a.setAsking(asking)
	switch {
	case asking:
		a.voice.Say(voice.Reason)
	case out.Disposition == record.Counted:
		a.voice.Say(voice.Thanks)
	case out.Disposition == record.Repeat:
		a.voice.Say(voice.Already)
	}
	a.mu.Lock()
	a.counters.Presses[out.Disposition]++
	a.mu.Unlock()
	ticket := ""
	if out.Ticket != nil {
		ticket = out.Ticket.ID
	}
	a.log.Info("press", "seq", seq, "id", id, "button", p.Button, "label", btn.Label,
		"disposition", out.Disposition, "ticket", ticket, "read_at", p.At.UTC().Format(time.RFC3339Nano), "durable_after", a.durableAfter)
	if asking {
		a.log.Info("asking for the reason", "for", id, "window", a.cfg.Reasons.Window)
	}
	a.checkFull()
	a.updateWindow()
}

// pressReason records the reason the press gives for the rating asked
// about. The binding does not change: a reason is not a rating.
func (a *Agent) pressReason(p device.Press, r reasons.Reason) {
	id, seq, err := a.append(func(rec *record.Press) {
		rec.Kind, rec.For = record.KindReason, r.For
		rec.Reason = &record.ReasonRef{Code: r.Code, Label: r.Label}
		rec.Ticket = r.Ticket
	}, p, nil)
	if err != nil {
		a.failed(p, r.Code, err)
		return
	}
	a.asker.End()
	a.feedback.Recorded(p.Button)
	a.setAsking(false)
	a.voice.Say(voice.Thanks)
	a.mu.Lock()
	a.counters.Reasons++
	a.mu.Unlock()
	a.log.Info("press", "seq", seq, "id", id, "button", p.Button, "kind", record.KindReason,
		"for", r.For, "reason", r.Code, "read_at", p.At.UTC().Format(time.RFC3339Nano), "durable_after", a.durableAfter)
	a.checkFull()
}

// append writes one record of press p, completed by fill, and the binding
// state that goes with it (nil: unchanged), durably.
func (a *Agent) append(fill func(*record.Press), p device.Press, state []byte) (id string, seq uint64, err error) {
	synced, bootID, uptime := a.clock.Synced(), a.clock.BootID(), a.clock.Uptime()
	seq, err = a.outbox.Append(func(slot buffer.Slot) ([]byte, []byte, error) {
		id = record.PressID(a.cfg.Device, slot.Epoch, slot.Seq)
		rec := record.Press{
			V: record.Version, ID: id,
			Device: a.cfg.Device, Hall: a.cfg.Hall, Counter: a.cfg.Counter,
			Epoch: slot.Epoch, Seq: slot.Seq, Button: p.Button,
			PressedAt:   p.At.Format(record.TimeLayout),
			ClockSynced: synced, BootID: bootID, UptimeMS: uptime.Milliseconds(),
			Prev: string(slot.Chain),
		}
		fill(&rec)
		// Signed and chained within the append: no crash can leave a
		// record unsigned or the chain broken.
		var chain string
		if a.key != nil {
			var err error
			if chain, err = rec.SignChain(a.key); err != nil {
				return nil, nil, err
			}
		} else {
			chain = rec.ChainHash()
		}
		data, err := json.Marshal(rec)
		return data, []byte(chain), err
	}, state)
	if err != nil {
		return "", 0, err
	}
	// The uplink first: the broker hop is on the press's way to the hall,
	// the light, the voice and the log line are not. Yielding lets the
	// uplink's goroutine take this processor now, publish, and come back,
	// instead of waiting until the main loop is done with the press.
	a.durableAfter = a.clock.Now().Sub(p.At)
	a.uplink.Notify()
	runtime.Gosched()
	a.noteOutbox(nil)
	return id, seq, nil
}

// failed shows and counts a press that could not be recorded.
func (a *Agent) failed(p device.Press, what string, err error) {
	a.feedback.Failed(p.Button)
	a.voice.Say(voice.Error)
	a.mu.Lock()
	a.counters.WriteFailures++
	a.mu.Unlock()
	a.log.Error("press NOT recorded", "button", p.Button, "label", what, "err", err)
	a.noteOutbox(err)
}

// setAsking makes the button LEDs ask for a reason, or stop asking.
func (a *Agent) setAsking(on bool) {
	if on != a.asking {
		a.asking = on
		a.feedback.AskReason(on)
	}
}

// checkFull raises the outbox alarm. Nothing is dropped: the alarm is for
// the hall, which must restore the link before the disk fills.
func (a *Agent) checkFull() {
	n := a.outbox.Len()
	full := n >= a.cfg.MaxRecords
	was := a.full.Swap(full)
	now := a.clock.Now()
	switch {
	case full && (!was || now.Sub(a.lastFullAt) >= time.Minute):
		a.lastFullAt = now
		a.log.Warn("outbox past its alarm threshold; still recording every press",
			"pending", n, "max_records", a.cfg.MaxRecords)
	case !full && was:
		a.log.Info("outbox back under its alarm threshold", "pending", n)
	}
	if full != was {
		a.uplink.RefreshStatus()
	}
}

// acceptTicket decides, as a ticket message arrives, whether it may take
// the one slot of the hand-off: only a message that decodes may, so junk
// never displaces the newest good ticket. It runs on paho's router.
func (a *Agent) acceptTicket(raw []byte) error {
	_, err := record.DecodeTicket(raw)
	if err == nil {
		return nil
	}
	a.mu.Lock()
	a.counters.TicketsRejected++
	n := a.counters.TicketsRejected
	a.mu.Unlock()
	// A flood must not flood the log (an SD card): the first ten are
	// logged, then the 16th, 32nd, 64th..., with the count.
	if throttle.Flood().Log(n) {
		a.log.Warn("ticket message rejected", "err", err, "bytes", len(raw), "rejected_total", n)
	}
	return err
}

func (a *Agent) applyTicket(raw []byte) {
	t, err := record.DecodeTicket(raw)
	if err != nil {
		a.mu.Lock()
		a.counters.TicketsRejected++
		a.mu.Unlock()
		a.log.Warn("ticket message rejected", "err", err, "bytes", len(raw))
		return
	}
	before := a.binding.Episode()
	if a.binding.ApplyTicket(t) {
		a.saveBinding()
	}
	a.mu.Lock()
	a.counters.TicketsApplied++
	a.ticket = a.binding.Current()
	a.mu.Unlock()
	a.log.Info("ticket", "ticket", t.Ticket, "state", t.State, "staff", t.Staff)
	if a.binding.Episode() != before {
		a.endAsking("asking for the reason ended by a new ticket")
	}
	a.updateWindow()
}

// staffKey opens a rating window for a ticket made on the terminal, unless
// the queue system's ticket is being served.
func (a *Agent) staffKey() {
	t := a.binding.StaffKey(a.outbox.Epoch(), a.cfg.Staff)
	if t == nil {
		a.mu.Lock()
		a.counters.StaffKeysIgnored++
		cur := a.ticket
		a.mu.Unlock()
		id := ""
		if cur != nil {
			id = cur.ID
		}
		a.log.Info("staff key ignored: the queue system's ticket is being served", "ticket", id)
		return
	}
	a.saveBinding()
	a.mu.Lock()
	a.counters.StaffKeys++
	a.ticket = a.binding.Current()
	a.mu.Unlock()
	a.log.Info("staff key: rating window open", "ticket", t.ID, "staff", t.Staff, "window", a.cfg.RatingWindow)
	a.endAsking("asking for the reason ended by the staff key")
	a.updateWindow()
}

// endAsking ends asking for a reason when the next citizen comes: a press
// now is theirs.
func (a *Agent) endAsking(why string) {
	if a.asker.Asking() {
		a.asker.End()
		a.log.Info(why)
	}
}

// saveBinding persists the binding after a ticket change. On failure the
// in-memory binding stays right; a restart before the next successful save
// falls back to the previous ticket state.
func (a *Agent) saveBinding() {
	if err := a.outbox.SaveState(a.binding.Snapshot()); err != nil {
		a.log.Error("ticket state not persisted", "err", err)
		a.noteOutbox(err)
		return
	}
	a.noteOutbox(nil)
}

// updateWindow follows the rating window and the reason window as time
// passes. The invitation is spoken once an episode's window is open after
// the service is done, once per episode.
func (a *Agent) updateWindow() {
	open := a.binding.WindowOpen()
	if open != a.window {
		a.window = open
		a.feedback.RatingWindow(open)
	}
	if ep := a.binding.Episode(); open && ep != a.invited && a.binding.Finished() {
		a.invited = ep
		a.voice.Say(voice.Invite)
	}
	if a.asking && !a.asker.Asking() {
		a.log.Info("no reason given within the window")
	}
	a.setAsking(a.asker.Asking())
}

// status builds the retained status payload; it runs on the uplink's
// goroutine, so it reads only what is safe to share.
func (a *Agent) status(online bool) []byte {
	pending := a.outbox.Len()
	last := a.outbox.LastSeq()
	full := a.full.Load()
	var unconfirmed *int64
	if k, ok := a.outbox.(keeper); ok {
		n, _ := k.Unconfirmed()
		unconfirmed = &n
	}
	now := a.clock.Now().Format(record.TimeLayout)
	st := record.Status{
		V: record.Version, Online: online, Device: a.cfg.Device, Version: a.cfg.Version,
		BootID: a.clock.BootID(), Epoch: a.outbox.Epoch(),
		Pending: &pending, LastSeq: &last, OutboxFull: &full, Unconfirmed: unconfirmed,
		At: now, PubKey: a.pubKey(),
	}
	if !online {
		// The offline status of a clean stop: what is left in the
		// outbox, for a consumer that subscribes after the stop.
		st.StoppedAt = now
	}
	b, _ := json.Marshal(st)
	return b
}

// pubKey is the status message's pubkey: base64 of the raw public key.
func (a *Agent) pubKey() string {
	if a.key == nil {
		return ""
	}
	return record.EncodePublicKey(a.key.Public().(ed25519.PublicKey))
}
