package pins

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"

	"github.com/hallrate/hallrate/device"
)

// How the outputs show things. Outputs are active high: a LED with its
// resistor from the pin to ground, a buzzer module or its transistor driven
// by the pin.
const (
	beepRecorded  = 60 * time.Millisecond  // a short beep: thank you
	beepFailed    = 600 * time.Millisecond // a long beep: not recorded
	failBlink     = 125 * time.Millisecond // the pressed button's LED flickers
	windowBlink   = 500 * time.Millisecond // "please rate": on 0.5s, off 0.5s
	offlinePeriod = 2 * time.Second        // status LED offline: a blip every 2s,
	offlineBlip   = 100 * time.Millisecond //   so a dark LED still means "agent down"
)

// Outputs are the feedback pins; any may be nil (not wired), and so may
// any entry of Buttons.
type Outputs struct {
	// Buttons holds the LED of each button, in button order.
	Buttons []gpio.PinOut
	// Window blinks while the rating window is open ("please rate").
	Window gpio.PinOut
	// Status is steady on while the broker link is up and blips every two
	// seconds while it is down.
	Status gpio.PinOut
	// Buzzer beeps briefly for a recorded press and long for a failure.
	Buzzer gpio.PinOut
}

// FeedbackConfig configures a [Feedback].
type FeedbackConfig struct {
	Outputs
	// LEDOn is how long a button's LED stays lit after its press is
	// recorded.
	LEDOn time.Duration
	// Clock times the lights; nil means real time.
	Clock clockwork.Clock
	// Logger receives output failures.
	Logger *slog.Logger
}

// Feedback drives the feedback outputs. Its methods only note what to show
// and wake its goroutine, so they never delay recording a press; the
// goroutine owns the pins and the timers until [Feedback.Close].
type Feedback struct {
	cfg  FeedbackConfig
	log  *slog.Logger
	outs []output

	mu sync.Mutex
	st show

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ device.Feedback = (*Feedback)(nil)

// output is one wired pin and the level last written to it.
type output struct {
	name    string
	pin     gpio.PinOut
	level   gpio.Level
	failing bool // the last write failed; logged once until one succeeds
	// level of this output for the current show, and when that changes
	// next (zero: not by itself)
	render func(s *show, now time.Time) (bool, time.Time)
}

// show is what the outputs should show, as set by the Feedback methods.
type show struct {
	lit         []time.Time // per button: LED lit until
	failFrom    []time.Time // per button: failure flicker from..
	failUntil   []time.Time //   ..until
	beepUntil   time.Time
	window      bool
	windowSince time.Time
	asking      bool // the button LEDs blink: "why?"
	askingSince time.Time
	online      bool
	linkSince   time.Time
}

// NewFeedback turns every wired output off, failing with a [*PinError] for
// a pin that cannot be driven, and starts the feedback goroutine. The
// status LED starts as offline.
func NewFeedback(cfg FeedbackConfig) (*Feedback, error) {
	if cfg.LEDOn <= 0 {
		return nil, errors.New("pins: LED on time is not positive")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Clock.Now()
	n := len(cfg.Buttons)
	f := &Feedback{
		cfg: cfg, log: cfg.Logger,
		st: show{
			lit: make([]time.Time, n), failFrom: make([]time.Time, n), failUntil: make([]time.Time, n),
			linkSince: now,
		},
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for i, p := range cfg.Buttons {
		f.add(p, func(s *show, now time.Time) (bool, time.Time) {
			if now.Before(s.failUntil[i]) {
				return blink(now, s.failFrom[i], failBlink, 2*failBlink, s.failUntil[i])
			}
			if now.Before(s.lit[i]) || !s.asking {
				return until(now, s.lit[i])
			}
			return blink(now, s.askingSince, windowBlink, 2*windowBlink, time.Time{})
		})
	}
	f.add(cfg.Window, func(s *show, now time.Time) (bool, time.Time) {
		if !s.window {
			return false, time.Time{}
		}
		return blink(now, s.windowSince, windowBlink, 2*windowBlink, time.Time{})
	})
	f.add(cfg.Status, func(s *show, now time.Time) (bool, time.Time) {
		if s.online {
			return true, time.Time{}
		}
		return blink(now, s.linkSince, offlineBlip, offlinePeriod, time.Time{})
	})
	f.add(cfg.Buzzer, func(s *show, now time.Time) (bool, time.Time) { return until(now, s.beepUntil) })
	for _, o := range f.outs {
		if err := o.pin.Out(gpio.Low); err != nil {
			return nil, &PinError{Pin: o.name, Op: "set up as output", Err: err}
		}
	}
	go f.run()
	return f, nil
}

func (f *Feedback) add(p gpio.PinOut, render func(*show, time.Time) (bool, time.Time)) {
	if p == nil {
		return
	}
	f.outs = append(f.outs, output{name: p.Name(), pin: p, render: render})
}

// Recorded implements [device.Feedback]: the button's LED lights for LEDOn
// and the buzzer beeps once, briefly.
func (f *Feedback) Recorded(button int) {
	f.update(func(s *show, now time.Time) {
		if i := button - 1; i >= 0 && i < len(s.lit) {
			s.lit[i] = now.Add(f.cfg.LEDOn)
			s.failUntil[i] = time.Time{}
		}
		s.beepUntil = now.Add(beepRecorded)
	})
}

// Failed implements [device.Feedback]: the button's LED flickers for LEDOn
// and the buzzer sounds long.
func (f *Feedback) Failed(button int) {
	f.update(func(s *show, now time.Time) {
		if i := button - 1; i >= 0 && i < len(s.lit) {
			s.lit[i] = time.Time{}
			s.failFrom[i], s.failUntil[i] = now, now.Add(f.cfg.LEDOn)
		}
		s.beepUntil = now.Add(beepFailed)
	})
}

// RatingWindow implements [device.Feedback]: the window LED blinks while
// open.
func (f *Feedback) RatingWindow(open bool) {
	f.update(func(s *show, now time.Time) {
		if open != s.window {
			s.window, s.windowSince = open, now
		}
	})
}

// AskReason implements [device.Feedback]: every button LED blinks while
// the terminal asks for the reason of a 差评 (a lit or flickering LED
// finishes first).
func (f *Feedback) AskReason(on bool) {
	f.update(func(s *show, now time.Time) {
		if on != s.asking {
			s.asking, s.askingSince = on, now
		}
	})
}

// Online implements [device.Feedback]: the status LED is steady while up.
func (f *Feedback) Online(up bool) {
	f.update(func(s *show, now time.Time) {
		if up != s.online {
			s.online, s.linkSince = up, now
		}
	})
}

// update changes the show and wakes the goroutine without waiting for it.
func (f *Feedback) update(change func(s *show, now time.Time)) {
	f.mu.Lock()
	change(&f.st, f.cfg.Clock.Now())
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default: // already woken; it reads the latest show
	}
}

// Close stops the goroutine and turns every output off. It may be called
// more than once.
func (f *Feedback) Close() {
	f.once.Do(func() { close(f.stop) })
	<-f.done
}

func (f *Feedback) run() {
	defer close(f.done)
	var timer clockwork.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := f.cfg.Clock.Now()
		levels, next := f.render(now)
		// The timer is armed before the pins change, so whoever sees a pin
		// change knows the next change is already scheduled.
		if timer != nil {
			timer.Stop()
		}
		var tick <-chan time.Time
		if !next.IsZero() {
			timer = f.cfg.Clock.NewTimer(next.Sub(now))
			tick = timer.Chan()
		}
		f.apply(levels)
		select {
		case <-f.wake:
		case <-tick:
		case <-f.stop:
			f.apply(make([]gpio.Level, len(f.outs)))
			return
		}
	}
}

// render returns the level of every output at now and the earliest time
// one of them changes by itself.
func (f *Feedback) render(now time.Time) ([]gpio.Level, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	levels := make([]gpio.Level, len(f.outs))
	var next time.Time
	for i, o := range f.outs {
		on, at := o.render(&f.st, now)
		levels[i] = gpio.Level(on)
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return levels, next
}

// apply writes the levels that changed. A pin that fails is logged once
// and retried with every change, so a loose wire does not fill the log.
func (f *Feedback) apply(levels []gpio.Level) {
	for i := range f.outs {
		o := &f.outs[i]
		if levels[i] == o.level && !o.failing {
			continue
		}
		err := o.pin.Out(levels[i])
		switch {
		case err != nil && !o.failing:
			o.failing = true
			f.log.Error("feedback output failed", "pin", o.name, "err", err)
		case err == nil && o.failing:
			o.failing = false
			f.log.Info("feedback output works again", "pin", o.name)
		}
		if err == nil {
			o.level = levels[i]
		}
	}
}

// until is a steady output, on until end.
func until(now, end time.Time) (bool, time.Time) {
	if now.Before(end) {
		return true, end
	}
	return false, time.Time{}
}

// blink is a periodic output from start: on for the first on of every
// period, until end (zero: forever). It returns the level at now and when
// it next changes.
func blink(now, start time.Time, on, period time.Duration, end time.Time) (bool, time.Time) {
	if !end.IsZero() && !now.Before(end) {
		return false, time.Time{}
	}
	e := max(now.Sub(start), 0)
	base := start.Add(e / period * period)
	lit := e%period < on
	next := base.Add(period)
	if lit {
		next = base.Add(on)
	}
	if !end.IsZero() && next.After(end) {
		next = end
	}
	return lit, next
}
