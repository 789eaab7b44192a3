// Package reasons decides when a press gives the reason for a 差评 rather
// than a rating: after a counted rating at one of the asking levels, the
// next press within the window names a reason by its button, and is
// recorded as a reason record for that rating, never counted.
//
// Asking lives in memory only: a restart, like a new ticket, ends it.
package reasons

import (
	"slices"
	"time"

	"github.com/hallrate/hallrate/record"
)

// Choice is one reason a button gives.
type Choice struct {
	Code, Label string
}

// Config configures an [Asker].
type Config struct {
	// After lists the satisfaction codes that ask; empty never asks.
	After []int
	// Window is how long a press after the rating gives a reason.
	Window time.Duration
	// Choices are the reasons of buttons 1, 2, ... in order; a button past
	// the last has none.
	Choices []Choice
}

// Reason is what a press gives while asking.
type Reason struct {
	Choice
	// For is the id of the rating the reason belongs to.
	For string
	// Ticket is that rating's ticket.
	Ticket *record.TicketRef
}

// Asker holds the asking state of one terminal. It is not safe for
// concurrent use: the agent's loop owns it.
type Asker struct {
	cfg    Config
	uptime func() time.Duration

	asking bool
	rating string
	ticket *record.TicketRef
	until  time.Duration // uptime at which asking ends
}

// New returns an Asker measuring the window on uptime (time since boot,
// which neither jumps with the wall clock nor stops in suspend).
func New(cfg Config, uptime func() time.Duration) *Asker {
	return &Asker{cfg: cfg, uptime: uptime}
}

// Asks reports whether a counted rating at satisfaction asks for a reason.
func (a *Asker) Asks(d record.Disposition, satisfaction int) bool {
	return d == record.Counted && len(a.cfg.Choices) > 0 && slices.Contains(a.cfg.After, satisfaction)
}

// Rated is told of every durable rating. It starts asking, and reports
// true, for a counted rating at an asking level; any other rating ends
// asking.
func (a *Asker) Rated(id string, d record.Disposition, satisfaction int, t *record.TicketRef) bool {
	if !a.Asks(d, satisfaction) {
		a.End()
		return false
	}
	a.asking, a.rating, a.ticket = true, id, t
	a.until = a.uptime() + a.cfg.Window
	return true
}

// Reason returns the reason a press of button gives now, if it gives one:
// while asking and for a button that has a reason. Asking goes on until
// [Asker.End], so a press whose record cannot be written leaves the
// citizen free to press again.
func (a *Asker) Reason(button int) (Reason, bool) {
	if !a.Asking() || button < 1 || button > len(a.cfg.Choices) {
		return Reason{}, false
	}
	return Reason{Choice: a.cfg.Choices[button-1], For: a.rating, Ticket: a.ticket}, true
}

// Asking reports whether a press now could give a reason. It turns false
// by itself once the window has passed.
func (a *Asker) Asking() bool {
	if a.asking && a.uptime() > a.until {
		a.End()
	}
	return a.asking
}

// End stops asking: the reason was recorded, a new ticket came, or the
// press was a rating.
func (a *Asker) End() {
	a.asking, a.rating, a.ticket, a.until = false, "", nil, 0
}
