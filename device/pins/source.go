// Package pins reads the rating buttons and drives the feedback lights and
// buzzer on GPIO pins through periph. The pins come in as periph's
// [gpio.PinIn] and [gpio.PinOut], looked up by the caller, so tests hand in
// gpiotest pins and a fake clock.
package pins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"

	"github.com/hallrate/hallrate/device"
)

// maxWait bounds every wait for an edge. WaitForEdge must never be given
// -1 (it returns at once on the gpioioctl driver and would spin) nor 0
// (which waits forever there). A bounded wait also lets a pin's goroutine
// notice the end of Run, and re-read a level whose edge was lost. Pin.Halt
// could cut the wait short, but on the sysfs driver it closes the file a
// concurrent WaitForEdge polls.
const maxWait = 250 * time.Millisecond

// minWait is the shortest wait handed to WaitForEdge: the sysfs driver
// rounds down to milliseconds, and 0 means forever on gpioioctl.
const minWait = time.Millisecond

// Button is one rating button.
type Button struct {
	// Label names the button in logs, such as "very_satisfied".
	Label string
	// Pin is the button's input pin.
	Pin gpio.PinIn
}

// Config configures a [Source].
type Config struct {
	// Buttons in configuration order: the first is button 1.
	Buttons []Button
	// Invite is the staff's "请评价" key, or nil when none is wired. It is
	// read and debounced like a button; its presses have StaffKey set and
	// its events Button 0.
	Invite gpio.PinIn
	// Pull is the pull resistor set on every button pin.
	Pull gpio.Pull
	// ActiveLow says a pressed button reads Low (a button to ground with a
	// pull-up), rather than High.
	ActiveLow bool
	// Debounce is how long a new level must hold before it counts.
	Debounce time.Duration
	// StuckAfter is how long a button may be held before it is reported
	// stuck.
	StuckAfter time.Duration
	// Clock is read for the time of each reading; nil means real time.
	Clock clockwork.Clock
	// Logger receives presses at debug level and stuck buttons as warnings.
	Logger *slog.Logger
	// Observe, when set, is called with every event of every button, from
	// the button's goroutine; it must return promptly. The selftest uses it
	// to show bounce counts.
	Observe func(Event)
}

// PinError is a pin that could not be set up. Pin is the pin's name as
// periph knows it, so the caller can name the configuration key.
type PinError struct {
	Pin string
	Op  string
	Err error
}

// Error returns a one-line description of the failure.
func (e *PinError) Error() string { return fmt.Sprintf("pin %q: %s: %v", e.Pin, e.Op, e.Err) }

// Unwrap returns the pin driver's error.
func (e *PinError) Unwrap() error { return e.Err }

// Source is the "gpio" input driver: one goroutine per button waits for
// edges and debounces them.
type Source struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	running bool
	health  device.Health
	stuck   map[int]bool
}

var (
	_ device.Source         = (*Source)(nil)
	_ device.HealthReporter = (*Source)(nil)
)

// NewSource checks cfg and sets every button pin up as an input with its
// pull resistor and both edges, so that a pin that is busy or cannot be an
// input fails now, as a [*PinError], rather than once the agent runs.
func NewSource(cfg Config) (*Source, error) {
	if len(cfg.Buttons) == 0 {
		return nil, errors.New("pins: no buttons")
	}
	if cfg.Debounce <= 0 {
		return nil, fmt.Errorf("pins: debounce %s is not positive", cfg.Debounce)
	}
	if cfg.StuckAfter <= cfg.Debounce {
		return nil, fmt.Errorf("pins: stuck limit %s is not longer than debounce %s", cfg.StuckAfter, cfg.Debounce)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for i, b := range cfg.Buttons {
		if b.Pin == nil {
			return nil, fmt.Errorf("pins: button %d %s: no pin", i+1, b.Label)
		}
		if err := b.Pin.In(cfg.Pull, gpio.BothEdges); err != nil {
			return nil, &PinError{Pin: b.Pin.Name(), Op: fmt.Sprintf("set up as input with %s and both edges", cfg.Pull), Err: err}
		}
	}
	if cfg.Invite != nil {
		if err := cfg.Invite.In(cfg.Pull, gpio.BothEdges); err != nil {
			return nil, &PinError{Pin: cfg.Invite.Name(), Op: fmt.Sprintf("set up as input with %s and both edges", cfg.Pull), Err: err}
		}
	}
	return &Source{cfg: cfg, log: cfg.Logger, stuck: map[int]bool{}}, nil
}

// Active reports whether level means pressed.
func (s *Source) Active(level gpio.Level) bool { return level != gpio.Level(s.cfg.ActiveLow) }

// Run implements [device.Source]. It reads every button's level first, so
// a button held down at start is not a press, then watches all buttons
// until ctx is done. Run may be called once.
func (s *Source) Run(ctx context.Context, out chan<- device.Press) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("pins: source already running")
	}
	s.running = true
	s.mu.Unlock()

	now := s.cfg.Clock.Now()
	first := 1
	if s.cfg.Invite != nil {
		first = 0
	}
	debs := make([]*debouncer, len(s.cfg.Buttons)+1)
	for n := first; n <= len(s.cfg.Buttons); n++ {
		label, pin := s.input(n)
		active := s.Active(pin.Read())
		debs[n] = newDebouncer(s.cfg.Debounce, s.cfg.StuckAfter, active, now)
		if active {
			s.log.Warn("button is down at start; it counts once released and pressed again",
				"button", n, "label", label, "pin", pin.Name())
		}
	}
	var wg sync.WaitGroup
	for n := first; n <= len(s.cfg.Buttons); n++ {
		wg.Go(func() { s.watch(ctx, n, debs[n], out) })
	}
	wg.Wait()
	return nil
}

// input returns the label and pin of button n, or of the staff key for 0.
func (s *Source) input(n int) (string, gpio.PinIn) {
	if n == 0 {
		return "staff_key", s.cfg.Invite
	}
	b := s.cfg.Buttons[n-1]
	return b.Label, b.Pin
}

// watch is the goroutine of button n (0: the staff key).
func (s *Source) watch(ctx context.Context, n int, d *debouncer, out chan<- device.Press) {
	_, pin := s.input(n)
	for ctx.Err() == nil {
		edge := pin.WaitForEdge(s.waitFor(d))
		if ctx.Err() != nil {
			return
		}
		now := s.cfg.Clock.Now()
		for _, ev := range d.observe(now, s.Active(pin.Read()), edge) {
			ev.Button = n
			s.note(ev)
			if s.cfg.Observe != nil {
				s.cfg.Observe(ev)
			}
			if ev.Kind != Pressed {
				continue
			}
			select {
			case out <- device.Press{Button: n, StaffKey: n == 0, At: ev.At}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// waitFor returns how long the goroutine may wait for the next edge.
func (s *Source) waitFor(d *debouncer) time.Duration {
	w := maxWait
	if at, ok := d.next(); ok {
		w = min(w, at.Sub(s.cfg.Clock.Now()))
	}
	return max(w, minWait)
}

// note counts and logs ev.
func (s *Source) note(ev Event) {
	label, pin := s.input(ev.Button)
	attrs := []any{"button", ev.Button, "label", label, "pin", pin.Name()}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Kind {
	case Pressed:
		s.health.Presses++
		s.log.Debug("button pressed", append(attrs, "edges", ev.Edges, "bounce", ev.Bounce)...)
	case Glitch:
		s.health.Glitches++
		s.log.Debug("button glitch ignored", append(attrs, "edges", ev.Edges, "lasted", ev.Bounce)...)
	case Stuck:
		s.health.StuckEvents++
		s.stuck[ev.Button] = true
		s.log.Warn("button held down too long; check that it is not jammed; it counts again once released",
			append(attrs, "held", ev.Held.Round(time.Millisecond))...)
	case Released:
		if s.stuck[ev.Button] {
			delete(s.stuck, ev.Button)
			s.log.Info("stuck button released", append(attrs, "held", ev.Held.Round(time.Millisecond))...)
		}
	}
}

// Health implements [device.HealthReporter].
func (s *Source) Health() device.Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.health
	for n := range s.stuck {
		h.Stuck = append(h.Stuck, n)
	}
	slices.Sort(h.Stuck)
	return h
}
