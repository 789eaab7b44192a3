// Package binding ties each press to the ticket episode served at the
// counter and decides how it counts: one counted rating per episode
// (一事一评价), then repeat, late or no_ticket as the contract orders them.
//
// The state is small and persisted by the caller: [Binding.Snapshot] after a
// ticket message, and [Outcome.State] inside the same outbox commit as the
// press it belongs to, so "already rated" can never be lost without the
// counted record being lost with it.
package binding

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
)

// episode is one service of one ticket at the counter.
type episode struct {
	N      uint64           `json:"n"`
	Ticket record.TicketRef `json:"ticket"`
	Rated  bool             `json:"rated"`
	// Done is set when "done" was first received for this episode.
	Done bool `json:"done"`
	// DoneUptime is the uptime (time since boot) of DoneBoot when the
	// window opened; it measures the window within one boot.
	DoneUptime time.Duration `json:"done_uptime"`
	DoneBoot   string        `json:"done_boot"`
	// DoneWall and DoneSynced let a later boot judge the window from the
	// wall clock when, and only when, both clocks were synchronised.
	DoneWall   time.Time `json:"done_wall"`
	DoneSynced bool      `json:"done_synced"`
	// Expired marks a window that could not be measured after a reboot.
	Expired bool `json:"expired,omitempty"`
}

type state struct {
	V       int      `json:"v"`
	Next    uint64   `json:"next"` // number of the next episode
	Current *episode `json:"current"`
	// StaffEpoch and StaffN number the staff-key episodes: n of the last
	// ticket S-{epoch}-{n} made in that outbox epoch.
	StaffEpoch string `json:"staff_epoch,omitempty"`
	StaffN     uint64 `json:"staff_n,omitempty"`
	// LastQueue is the last queue-system ticket applied (until idle). A
	// staff-key episode supersedes it without the queue system knowing,
	// so its retained message, delivered again after a reconnect, must
	// not reopen it.
	LastQueue *record.TicketRef `json:"last_queue,omitempty"`
}

// Binding is the ticket state machine of one counter. It is not safe for
// concurrent use: the agent's loop owns it.
type Binding struct {
	window time.Duration
	clock  sysclock.Clock
	st     state
}

// New restores a binding from a snapshot (nil or empty for a fresh device).
func New(window time.Duration, clock sysclock.Clock, snapshot []byte) (*Binding, error) {
	b := &Binding{window: window, clock: clock, st: state{V: 1, Next: 1}}
	if len(snapshot) == 0 {
		return b, nil
	}
	if err := json.Unmarshal(snapshot, &b.st); err != nil {
		return nil, fmt.Errorf("binding: restore state: %w", err)
	}
	if b.st.V != 1 {
		return nil, fmt.Errorf("binding: restore state: unsupported version %d", b.st.V)
	}
	b.rebase()
	return b, nil
}

// rebase carries an open window across a restart. Within the same boot the
// uptime still measures it; after a reboot only two synchronised wall clock
// readings can, and otherwise the window counts as closed.
func (b *Binding) rebase() {
	ep := b.st.Current
	if ep == nil || !ep.Done || ep.Expired || ep.DoneBoot == b.clock.BootID() {
		return
	}
	now := b.clock.Now()
	if !ep.DoneSynced || !b.clock.Synced() || now.Before(ep.DoneWall) {
		ep.Expired = true
		return
	}
	elapsed := now.Sub(ep.DoneWall)
	ep.DoneBoot = b.clock.BootID()
	ep.DoneUptime = b.clock.Uptime() - elapsed
}

// ApplyTicket takes a validated ticket message and reports whether the
// state changed (and so should be persisted).
//
// A ticket message always comes from the queue system. While a staff-key
// episode is current, the queue system's ticket it superseded, delivered
// again unchanged, is not a new service and changes nothing.
func (b *Binding) ApplyTicket(t record.Ticket) bool {
	cur := b.st.Current
	if t.State == record.Idle {
		changed := cur != nil || b.st.LastQueue != nil
		b.st.Current = nil
		b.st.LastQueue = nil
		return changed
	}
	ref := record.TicketRef{ID: t.Ticket, State: t.State, Staff: t.Staff, Item: t.Item, ProjectNo: t.ProjectNo, Source: record.SourceQueue}
	if cur != nil && cur.Ticket.FromStaffKey() && b.st.LastQueue != nil &&
		b.st.LastQueue.ID == ref.ID && b.st.LastQueue.State == ref.State {
		return false
	}
	lastChanged := b.st.LastQueue == nil || *b.st.LastQueue != ref
	b.st.LastQueue = &ref
	if cur == nil || cur.Ticket.ID != t.Ticket || cur.Ticket.FromStaffKey() {
		cur = &episode{N: b.st.Next}
		b.st.Next++
		b.st.Current = cur
	}
	before := *cur
	cur.Ticket = ref
	if t.State == record.Done && !cur.Done {
		b.openWindow(cur)
	}
	return before != *cur || lastChanged
}

// openWindow marks the episode done now: its rating window opens.
func (b *Binding) openWindow(ep *episode) {
	ep.Done = true
	ep.DoneUptime = b.clock.Uptime()
	ep.DoneBoot = b.clock.BootID()
	ep.DoneWall = b.clock.Now()
	ep.DoneSynced = b.clock.Synced()
}

// StaffKey starts an episode for a press of the staff key ("请评价"): a
// ticket made on the terminal, S-{epoch}-{n} with n counting the staff-key
// episodes of the outbox epoch, already done, so its rating window opens
// now. A queue-system ticket being served wins: then nothing changes and
// StaffKey returns nil. staff names the staff member, if known.
func (b *Binding) StaffKey(epoch, staff string) *record.TicketRef {
	if cur := b.st.Current; cur != nil && !cur.Ticket.FromStaffKey() && cur.Ticket.State == record.Serving {
		return nil
	}
	if b.st.StaffEpoch != epoch {
		b.st.StaffEpoch = epoch
		b.st.StaffN = 0
	}
	b.st.StaffN++
	ep := &episode{N: b.st.Next, Ticket: record.TicketRef{
		ID:     fmt.Sprintf("S-%s-%d", epoch, b.st.StaffN),
		State:  record.Done,
		Staff:  staff,
		Source: record.SourceStaff,
	}}
	b.st.Next++
	b.openWindow(ep)
	b.st.Current = ep
	t := ep.Ticket
	return &t
}

// Outcome is the decision for one press.
type Outcome struct {
	Disposition record.Disposition
	// Ticket is the ticket the press is bound to; nil for no_ticket.
	Ticket *record.TicketRef
	// State is the snapshot to persist together with the press record.
	State []byte
	next  state
}

// Press decides how a press made now counts, without changing the binding.
// Call [Binding.Commit] with the outcome once its record is durable.
func (b *Binding) Press() Outcome {
	ep := b.st.Current
	if ep == nil {
		return b.outcome(record.NoTicket, nil, b.st)
	}
	t := ep.Ticket
	if t.Source == "" {
		// An episode persisted before sources were recorded.
		t.Source = record.SourceQueue
	}
	switch {
	case ep.Rated:
		return b.outcome(record.Repeat, &t, b.st)
	case !b.open(ep):
		return b.outcome(record.Late, &t, b.st)
	}
	rated := *ep
	rated.Rated = true
	next := b.st
	next.Current = &rated
	return b.outcome(record.Counted, &t, next)
}

func (b *Binding) outcome(d record.Disposition, t *record.TicketRef, next state) Outcome {
	return Outcome{Disposition: d, Ticket: t, State: encode(next), next: next}
}

// Commit applies the outcome of a press whose record is now durable.
func (b *Binding) Commit(o Outcome) { b.st = o.next }

// WindowOpen reports whether a press now would be counted.
func (b *Binding) WindowOpen() bool {
	ep := b.st.Current
	return ep != nil && !ep.Rated && b.open(ep)
}

// Episode returns the number of the current episode, 0 when there is none.
// A new number means a new citizen at the counter.
func (b *Binding) Episode() uint64 {
	if b.st.Current == nil {
		return 0
	}
	return b.st.Current.N
}

// Finished reports whether the current episode's service is done (its
// window has opened, whether or not it is still open).
func (b *Binding) Finished() bool {
	return b.st.Current != nil && b.st.Current.Done
}

// Current returns the current ticket, or nil when there is none.
func (b *Binding) Current() *record.TicketRef {
	if b.st.Current == nil {
		return nil
	}
	t := b.st.Current.Ticket
	return &t
}

func (b *Binding) open(ep *episode) bool {
	if ep.Ticket.State == record.Serving {
		return true
	}
	if !ep.Done || ep.Expired {
		return false
	}
	return b.clock.Uptime()-ep.DoneUptime <= b.window
}

// Snapshot returns the state to persist.
func (b *Binding) Snapshot() []byte { return encode(b.st) }

func encode(s state) []byte {
	// Marshalling a struct of plain fields cannot fail.
	out, _ := json.Marshal(s)
	return out
}
