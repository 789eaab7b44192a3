package pins

import "time"

// EventKind says what a button did.
type EventKind int

// The kinds of [Event].
const (
	// Pressed is a clean transition to active, held for the debounce time.
	Pressed EventKind = iota + 1
	// Released is a clean transition back to inactive.
	Released
	// Glitch is activity that settled back to the previous state within
	// the debounce time: noise on the wire or a touch too light to count.
	Glitch
	// Stuck is a button held down longer than the stuck limit. It is
	// reported once per hold.
	Stuck
)

var kindNames = [...]string{"", "pressed", "released", "glitch", "stuck"}

// String returns the kind's name as it appears in logs.
func (k EventKind) String() string {
	if k < Pressed || k > Stuck {
		return "unknown"
	}
	return kindNames[k]
}

// Event is one thing a button did, as recognised by the debouncer.
type Event struct {
	Kind EventKind
	// Button is the 1-based index of the button in configuration order.
	Button int
	// At is when the event was recognised.
	At time.Time
	// Edges is the number of edges in the burst that led to the event: 1
	// for a clean contact, more for a bouncing one. Zero for Stuck.
	Edges int
	// Bounce is the time from the first to the last edge of that burst: the
	// measured contact bounce.
	Bounce time.Duration
	// Held is how long the button had been down, for Stuck and Released.
	Held time.Duration
}

// debouncer turns the levels read from one button into events. It is a pure
// state machine: the pin's goroutine tells it what it read and when, and
// asks it when it next needs to look, so it is tested without a clock.
//
// A change counts once the level has stayed put for the debounce time after
// its last edge; until then every edge restarts the wait. Debouncing here
// rather than with periph's gpioutil.Debounce, whose delay argument is
// ignored.
type debouncer struct {
	debounce   time.Duration
	stuckAfter time.Duration

	stable    bool      // the debounced state: true while pressed
	raw       bool      // the level last read
	heldSince time.Time // when stable last became true
	stuck     bool      // Stuck was reported for the current hold

	edges       int       // edges in the current burst; 0 when quiet
	first, last time.Time // first and last edge of the burst
}

// newDebouncer starts from the level read at start: a button already down
// then is not a press, only a candidate for Stuck.
func newDebouncer(debounce, stuckAfter time.Duration, active bool, now time.Time) *debouncer {
	return &debouncer{
		debounce: debounce, stuckAfter: stuckAfter,
		stable: active, raw: active, heldSince: now,
	}
}

// observe takes one reading: active is the level read at now, and edge says
// the pin reported an edge since the previous reading. A level that changed
// without a reported edge counts as an edge too, so a lost edge cannot leave
// the button in the wrong state.
func (d *debouncer) observe(now time.Time, active, edge bool) []Event {
	if edge || active != d.raw {
		if d.edges == 0 {
			d.first = now
		}
		d.edges++
		d.last = now
		d.raw = active
	}
	var evs []Event
	if d.edges > 0 && now.Sub(d.last) >= d.debounce {
		evs = append(evs, d.settle(now))
	}
	if d.stable && !d.stuck && d.edges == 0 && now.Sub(d.heldSince) >= d.stuckAfter {
		d.stuck = true
		evs = append(evs, Event{Kind: Stuck, At: now, Held: now.Sub(d.heldSince)})
	}
	return evs
}

// settle ends a burst whose level has been quiet for the debounce time.
func (d *debouncer) settle(now time.Time) Event {
	ev := Event{At: now, Edges: d.edges, Bounce: d.last.Sub(d.first)}
	d.edges = 0
	switch {
	case d.raw == d.stable:
		ev.Kind = Glitch
	case d.raw:
		ev.Kind = Pressed
		d.stable = true
		d.heldSince = now
		d.stuck = false
	default:
		ev.Kind = Released
		ev.Held = now.Sub(d.heldSince)
		d.stable = false
		d.stuck = false
	}
	return ev
}

// next returns when the debouncer next needs a reading even if no edge
// comes, and false when it has nothing to time.
func (d *debouncer) next() (time.Time, bool) {
	if d.edges > 0 {
		return d.last.Add(d.debounce), true
	}
	if d.stable && !d.stuck {
		return d.heldSince.Add(d.stuckAfter), true
	}
	return time.Time{}, false
}
