package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/device/pins"
	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/voice"
)

const selftestSummary = `Check the wiring of this terminal, for the person who installs it:
open every configured pin, ask for each button to be pressed in turn and show
which pin answered with its contact bounce, light each light and sound the
buzzer in turn, then print PASS or FAIL. Stop the agent first: its pins are
busy while it runs. With device.driver = "sim", type the button numbers
instead of pressing buttons. Exits non-zero on FAIL.`

func cmdSelftest(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("selftest", selftestSummary, io)
	path := fs.String("config", config.DefaultPath, "configuration file")
	timeout := fs.Duration("timeout", 30*time.Second, "how long each step waits for a press or an answer")
	light := fs.Duration("light", 2*time.Second, "how long each light or the buzzer is switched on")
	confirm := fs.Bool("confirm", true, "ask whether each light lit; with -confirm=false a light passes when its pin can be driven")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *timeout <= 0 || *light <= 0 {
		fmt.Fprintln(io.Err, "selftest: -timeout and -light must be positive")
		return cli.ErrUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	st := &selftest{
		cfg: cfg, path: *path, in: io.In, out: io.Out,
		timeout: *timeout, light: *light, confirm: *confirm,
		log:      newLogger(io, "warn"),
		initHost: initHost, byName: gpioreg.ByName, clock: clockwork.NewRealClock(),
	}
	return st.run(ctx)
}

// selftest is one run of the wiring check.
type selftest struct {
	cfg                 config.Config
	path                string
	in                  io.Reader
	out                 io.Writer
	timeout, light      time.Duration
	confirm             bool
	log                 *slog.Logger
	initHost            func() error
	byName              func(string) gpio.PinIO
	clock               clockwork.Clock
	checks, failed      int
	failures            []string
	answers             <-chan string // lines typed, for the lights (gpio only)
	buttons             []pins.Button // the button pins that opened
	buttonOf            []int         // config button number of each of buttons
	outputs             []openOutput
	maxBounce           time.Duration
	glitches, stuckSeen map[int]int
	drivers             sync.WaitGroup // the input driver's goroutines
}

// openOutput is an output pin that opened, with its key.
type openOutput struct {
	spec pinSpec
	pin  gpio.PinOut
}

// event is a button event as the selftest sees it: from the pins driver
// with its bounce, or from the sim driver without.
type event struct {
	pins.Event
	sim bool
}

func (st *selftest) run(ctx context.Context) error {
	driver := st.cfg.Device.Driver
	st.printf("hallrate-agent selftest: %s, driver %s, %d buttons, %s per step\n",
		st.path, driver, len(st.cfg.Buttons), st.timeout)
	st.glitches, st.stuckSeen = map[int]int{}, map[int]int{}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		st.drivers.Wait() // nothing logs after the verdict
	}()

	var events <-chan event
	if driver == "sim" {
		st.printf("\nPins\n  skipped: the sim driver has no pins; type a button number and Enter for each press\n")
		events = st.simEvents(ctx)
	} else {
		st.answers = readLines(st.in)
		if !st.openPins() {
			return st.summary()
		}
		events = st.pinEvents(ctx)
	}
	if err := st.pressButtons(ctx, events); err != nil {
		return err
	}
	if driver == "sim" {
		st.printf("\nLights\n  skipped: the sim driver has no lights\n")
	} else if err := st.lightOutputs(ctx); err != nil {
		return err
	}
	if err := st.speak(ctx); err != nil {
		return err
	}
	return st.summary()
}

func (st *selftest) printf(format string, a ...any) { fmt.Fprintf(st.out, format, a...) }

// result records one check and prints it.
func (st *selftest) result(ok bool, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	st.checks++
	mark := "ok  "
	if !ok {
		st.failed++
		st.failures = append(st.failures, msg)
		mark = "FAIL"
	}
	st.printf("  %s  %s\n", mark, msg)
}

// openPins looks every configured pin up and sets it up as the agent
// would. It reports false when nothing more can be checked.
func (st *selftest) openPins() bool {
	st.printf("\nPins\n")
	if err := st.initHost(); err != nil {
		st.result(false, "%v", err)
		return false
	}
	for _, s := range pinSpecs(st.cfg) {
		p, err := lookupPin(s, st.byName)
		if err != nil {
			st.result(false, "%s", strings.TrimPrefix(err.Error(), "config: "))
			continue
		}
		if s.role != roleButton && s.role != roleInvite {
			if err := p.Out(gpio.Low); err != nil {
				st.result(false, "%s: %s cannot be an output: %s%s", s.key, s.name, singleLine(err), pinHint(err))
				continue
			}
			st.outputs = append(st.outputs, openOutput{s, p})
			st.result(true, "%s: %s output, off", s.key, s.name)
			continue
		}
		if err := p.In(gpioPull(st.cfg), gpio.BothEdges); err != nil {
			st.result(false, "%s: %s cannot be an input with edges: %s%s", s.key, s.name, singleLine(err), pinHint(err))
			continue
		}
		if (p.Read() == gpio.Low) == gpioActiveLow(st.cfg) {
			st.result(false, "%s: %s reads pressed before any press: button held or jammed, wire to ground "+
				"on the wrong pin, or gpio.pull (%s) and gpio.active_low (%t) do not fit the wiring",
				s.key, s.name, st.cfg.GPIO.Pull, gpioActiveLow(st.cfg))
		} else {
			st.result(true, "%s: %s input, pull %s, reads released", s.key, s.name, st.cfg.GPIO.Pull)
		}
		if s.role == roleInvite {
			continue
		}
		st.buttons = append(st.buttons, pins.Button{Label: st.cfg.Buttons[s.button-1].Label, Pin: p})
		st.buttonOf = append(st.buttonOf, s.button)
	}
	return true
}

// pinEvents runs the pins driver over the buttons that opened.
func (st *selftest) pinEvents(ctx context.Context) <-chan event {
	events := make(chan event, 64)
	if len(st.buttons) == 0 {
		return events
	}
	src, err := pins.NewSource(pins.Config{
		Buttons: st.buttons, Pull: gpioPull(st.cfg), ActiveLow: gpioActiveLow(st.cfg),
		Debounce: st.cfg.GPIO.Debounce.Duration, StuckAfter: st.cfg.GPIO.StuckAfter.Duration,
		Clock: st.clock, Logger: slog.New(slog.DiscardHandler),
		Observe: func(e pins.Event) {
			e.Button = st.buttonOf[e.Button-1]
			select {
			case events <- event{Event: e}:
			default: // a flood of events; the selftest reads what it needs
			}
		},
	})
	if err != nil {
		st.result(false, "start the button driver: %v", err)
		return events
	}
	presses := make(chan device.Press)
	st.drivers.Go(func() {
		for range presses { // Observe has them already
		}
	})
	st.drivers.Go(func() {
		defer close(presses)
		if err := src.Run(ctx, presses); err != nil {
			st.log.Error("button driver stopped", "err", err)
		}
	})
	return events
}

// simEvents runs the sim driver over standard input.
func (st *selftest) simEvents(ctx context.Context) <-chan event {
	events := make(chan event)
	presses := make(chan device.Press)
	sim := &device.Sim{In: st.in, Buttons: len(st.cfg.Buttons), Logger: st.log, Clock: st.clock}
	st.drivers.Go(func() {
		if err := sim.Run(ctx, presses); err != nil {
			st.log.Error("sim input stopped", "err", err)
		}
	})
	st.drivers.Go(func() {
		for {
			select {
			case p := <-presses:
				select {
				case events <- event{Event: pins.Event{Kind: pins.Pressed, Button: p.Button, At: p.At}, sim: true}:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	})
	return events
}

// pressButtons asks for each button in turn and checks that it, and only
// it, answers.
func (st *selftest) pressButtons(ctx context.Context, events <-chan event) error {
	st.printf("\nButtons: press each button once when asked\n")
	opened := map[int]bool{}
	for _, n := range st.buttonOf {
		opened[n] = true
	}
	for i, b := range st.cfg.Buttons {
		n := i + 1
		name := fmt.Sprintf("button %d %s", n, b.Label)
		if st.cfg.Device.Driver != "sim" && !opened[n] {
			st.result(false, "%s: not tried, its pin %s did not open", name, b.Pin)
			continue
		}
		how := "press it"
		if st.cfg.Device.Driver == "sim" {
			how = fmt.Sprintf("type %d and Enter", n)
		} else {
			how += " (pin " + b.Pin + ")"
		}
		st.printf("  Now %s: %s (satisfaction %d) ...\n", how, name, b.Satisfaction)
		if err := st.awaitPress(ctx, events, n, name); err != nil {
			return err
		}
	}
	for n, c := range st.glitches {
		st.printf("  note: button %d had %d glitches shorter than gpio.debounce (%s): a loose or long wire?\n",
			n, c, st.cfg.GPIO.Debounce)
	}
	if d := st.cfg.GPIO.Debounce.Duration; st.maxBounce > d*2/3 {
		st.printf("  note: contact bounce up to %s is close to gpio.debounce (%s); consider raising gpio.debounce\n",
			st.maxBounce.Round(10*time.Microsecond), d)
	}
	return nil
}

// awaitPress waits for button n and records the outcome.
func (st *selftest) awaitPress(ctx context.Context, events <-chan event, n int, name string) error {
	deadline := st.clock.NewTimer(st.timeout)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.New("selftest: interrupted")
		case <-deadline.Chan():
			st.result(false, "%s: no press seen within %s", name, st.timeout)
			return nil
		case e := <-events:
			switch e.Kind {
			case pins.Glitch:
				st.glitches[e.Button]++
				continue
			case pins.Stuck:
				if st.stuckSeen[e.Button]++; st.stuckSeen[e.Button] == 1 {
					st.result(false, "button %d held down longer than gpio.stuck_after (%s): jammed, or wired to ground?",
						e.Button, st.cfg.GPIO.StuckAfter)
				}
				continue
			case pins.Pressed:
			default:
				continue
			}
			if e.Button != n {
				b := st.cfg.Buttons[e.Button-1]
				if e.sim {
					st.result(false, "%s: button %d %s was typed instead", name, e.Button, b.Label)
					return nil
				}
				st.result(false, "%s: button %d %s (pin %s) answered instead: wires swapped, or the wrong button pressed",
					name, e.Button, b.Label, b.Pin)
				return nil
			}
			if e.sim {
				st.result(true, "%s seen (sim)", name)
				return nil
			}
			st.maxBounce = max(st.maxBounce, e.Bounce)
			st.result(true, "%s seen on %s: %d edge(s), contact bounce %s",
				name, st.cfg.Buttons[n-1].Pin, e.Edges, e.Bounce.Round(10*time.Microsecond))
			return nil
		}
	}
}

// lightOutputs switches each output on in turn and, with confirm, asks
// whether it showed.
func (st *selftest) lightOutputs(ctx context.Context) error {
	if len(st.outputs) == 0 {
		st.printf("\nLights\n  none configured\n")
		return nil
	}
	st.printf("\nLights: watch each one")
	if st.confirm {
		st.printf(", then answer y or n")
	}
	st.printf("\n")
	for _, o := range st.outputs {
		what, verb := "light", "light up"
		if o.spec.role == roleBuzzer {
			what, verb = "buzzer", "sound"
		}
		st.printf("  Switching on the %s %s (%s) for %s ...\n", what, o.spec.key, o.spec.name, st.light)
		errOn := o.pin.Out(gpio.High)
		t := st.clock.NewTimer(st.light)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = o.pin.Out(gpio.Low) // best effort on the way out
			return errors.New("selftest: interrupted")
		case <-t.Chan():
		}
		errOff := o.pin.Out(gpio.Low)
		if err := errors.Join(errOn, errOff); err != nil {
			st.result(false, "%s: %s could not be driven: %s", o.spec.key, o.spec.name, singleLine(err))
			continue
		}
		if !st.confirm {
			st.result(true, "%s: %s driven on and off", o.spec.key, o.spec.name)
			continue
		}
		st.printf("  Did it %s? [y/n] ", verb)
		ans, err := st.answer(ctx)
		if err != nil {
			return err
		}
		st.printf("\n")
		switch ans {
		case "y", "yes":
			st.result(true, "%s: %s seen to %s", o.spec.key, o.spec.name, verb)
		case "":
			st.result(false, "%s: %s: no answer within %s", o.spec.key, o.spec.name, st.timeout)
		default:
			st.result(false, "%s: %s did not %s: check its wiring, resistor and polarity", o.spec.key, o.spec.name, verb)
		}
	}
	return nil
}

// speak plays each voice prompt in turn and, with confirm and a keyboard
// free to answer (not with the sim driver, which reads it), asks whether
// it was heard.
func (st *selftest) speak(ctx context.Context) error {
	vc := st.cfg.Voice
	if !vc.Enabled {
		st.printf("\nVoice\n  off (voice.enabled = false)\n")
		return nil
	}
	p := voice.New(voice.Config{Player: vc.Player, Device: vc.Device, Dir: vc.Dir, Volume: vc.Volume, Logger: st.log})
	ask := st.confirm && st.answers != nil
	st.printf("\nVoice: listen to each prompt")
	if ask {
		st.printf(", then answer y or n")
	}
	st.printf("\n")
	for _, pr := range voice.Prompts() {
		st.printf("  Playing %s (%s) ...\n", pr, p.File(pr))
		if err := p.Play(ctx, pr); err != nil {
			if ctx.Err() != nil {
				return errors.New("selftest: interrupted")
			}
			st.result(false, "voice %s: %s", pr, singleLine(err))
			continue
		}
		if !ask {
			st.result(true, "voice %s: played", pr)
			continue
		}
		st.printf("  Did you hear it? [y/n] ")
		ans, err := st.answer(ctx)
		if err != nil {
			return err
		}
		st.printf("\n")
		switch ans {
		case "y", "yes":
			st.result(true, "voice %s: heard", pr)
		case "":
			st.result(false, "voice %s: no answer within %s", pr, st.timeout)
		default:
			st.result(false, "voice %s: not heard: check voice.device (aplay -l lists the cards), the volume (alsamixer) and the speaker", pr)
		}
	}
	return nil
}

// answer waits for a typed line; "" when none came in time or input ended.
func (st *selftest) answer(ctx context.Context) (string, error) {
	t := st.clock.NewTimer(st.timeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", errors.New("selftest: interrupted")
	case <-t.Chan():
		return "", nil
	case line, ok := <-st.answers:
		if !ok {
			return "", nil
		}
		return strings.ToLower(strings.TrimSpace(line)), nil
	}
}

// summary prints the verdict and returns an error on FAIL, for the exit
// code.
func (st *selftest) summary() error {
	st.printf("\nSummary\n")
	if st.failed == 0 {
		st.printf("PASS: all %d checks passed\n", st.checks)
		return nil
	}
	for _, f := range st.failures {
		st.printf("  FAIL  %s\n", f)
	}
	st.printf("FAIL: %d of %d checks failed\n", st.failed, st.checks)
	return fmt.Errorf("selftest: FAIL: %d of %d checks failed", st.failed, st.checks)
}

// readLines sends each line of r on the channel and closes it at the end.
func readLines(r io.Reader) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}
