package pins

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hallrate/hallrate/device"
)

// within bounds every wait for something the goroutines under test do; it
// is a deadline, not a delay.
const within = 5 * time.Second

// waitPin is a gpiotest.Pin whose WaitForEdge announces each wait on waits
// once its timer is set on the fake clock. gpiotest's own WaitForEdge
// leaves its clockwork timer registered when an edge wins, so the fake
// clock's BlockUntil cannot tell when the driver is waiting again.
type waitPin struct {
	*gpiotest.Pin
	clock *clockwork.FakeClock
	waits chan time.Duration
	stop  chan struct{}
}

func newWaitPin(name string, clock *clockwork.FakeClock) *waitPin {
	return &waitPin{
		Pin:   &gpiotest.Pin{N: name, Clock: clock, EdgesChan: make(chan gpio.Level)},
		clock: clock,
		waits: make(chan time.Duration),
		stop:  make(chan struct{}),
	}
}

// WaitForEdge implements gpio.PinIn.
func (p *waitPin) WaitForEdge(d time.Duration) bool {
	timer := p.clock.NewTimer(d)
	defer timer.Stop()
	select {
	case p.waits <- d:
	case <-p.stop:
		return false
	}
	select {
	case <-timer.Chan():
		return false
	case l := <-p.EdgesChan:
		_ = p.Out(l) // gpiotest.Pin.Out never fails
		return true
	case <-p.stop:
		return false
	}
}

// rig runs a Source over waitPins and a fake clock. It tracks how long each
// pin's goroutine has left to wait, so it can move time exactly.
type rig struct {
	t     *testing.T
	clock *clockwork.FakeClock
	pins  []*waitPin
	left  []time.Duration // remaining wait of each pin; 0 when not known to wait
	src   *Source
	out   chan device.Press
	done  chan error
}

func newRig(t *testing.T, cfg Config, names ...string) *rig {
	t.Helper()
	r := &rig{t: t, clock: clockwork.NewFakeClockAt(t0), out: make(chan device.Press, 16), done: make(chan error, 1)}
	for _, n := range names {
		// A name "invite=PIN" is the staff key's pin.
		staff, isStaff := strings.CutPrefix(n, "invite=")
		p := newWaitPin(staff, r.clock)
		r.pins = append(r.pins, p)
		if isStaff {
			cfg.Invite = p
			continue
		}
		cfg.Buttons = append(cfg.Buttons, Button{Label: "b-" + n, Pin: p})
	}
	r.left = make([]time.Duration, len(names))
	cfg.Clock = r.clock
	if cfg.Debounce == 0 {
		cfg.Debounce = 30 * time.Millisecond
	}
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = 5 * time.Second
	}
	if cfg.Pull == gpio.PullNoChange {
		cfg.Pull = gpio.PullUp
		cfg.ActiveLow = true
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.src = src
	return r
}

// start runs the source; the test ends by stopping it.
func (r *rig) start() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { r.done <- r.src.Run(ctx, r.out) }()
	r.t.Cleanup(func() {
		cancel()
		for _, p := range r.pins {
			close(p.stop)
		}
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Run: %v", err)
			}
		case <-time.After(within):
			r.t.Error("Run did not return after cancel")
		}
	})
}

// sync waits until pin i's goroutine is waiting, if not known already.
func (r *rig) sync(i int) {
	r.t.Helper()
	if r.left[i] > 0 {
		return
	}
	select {
	case d := <-r.pins[i].waits:
		if d <= 0 || d > maxWait {
			r.t.Fatalf("pin %d waits %v for an edge, want within (0, %v]", i, d, maxWait)
		}
		r.left[i] = d
	case <-time.After(within):
		r.t.Fatalf("pin %d never waited for an edge", i)
	}
}

// edge makes pin i report an edge to level l.
func (r *rig) edge(i int, l gpio.Level) {
	r.t.Helper()
	r.sync(i)
	select {
	case r.pins[i].EdgesChan <- l:
		r.left[i] = 0
	case <-time.After(within):
		r.t.Fatalf("pin %d did not take its edge", i)
	}
}

// advance moves the fake clock by d, in steps that each end a wait, so
// every goroutine sees every instant it asked for, and returns once every
// goroutine has dealt with the time and waits again.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	for d > 0 {
		step := d
		for i := range r.pins {
			r.sync(i)
			step = min(step, r.left[i])
		}
		r.clock.Advance(step)
		d -= step
		for i := range r.left {
			r.left[i] -= step
		}
	}
	for i := range r.pins {
		r.sync(i)
	}
}

// press expects button n to be pressed next.
func (r *rig) press(n int) device.Press {
	r.t.Helper()
	select {
	case p := <-r.out:
		if p.Button != n {
			r.t.Fatalf("press of button %d, want %d", p.Button, n)
		}
		return p
	case <-time.After(within):
		r.t.Fatalf("no press of button %d", n)
	}
	return device.Press{}
}

// noPress checks that no press is waiting. Every goroutine has been seen
// waiting again since the last edge, so any press would already be there.
func (r *rig) noPress() {
	r.t.Helper()
	for i := range r.pins {
		r.sync(i)
	}
	select {
	case p := <-r.out:
		r.t.Fatalf("unexpected press of button %d", p.Button)
	default:
	}
}

func TestSourceCleanPress(t *testing.T) {
	r := newRig(t, Config{}, "GPIO5")
	r.start()
	r.edge(0, gpio.Low)
	r.advance(29 * time.Millisecond)
	r.noPress()
	r.advance(time.Millisecond)
	p := r.press(1)
	if want := t0.Add(30 * time.Millisecond); !p.At.Equal(want) {
		t.Errorf("press at %v, want %v", p.At, want)
	}
	r.edge(0, gpio.High)
	r.advance(time.Second)
	r.noPress()
	r.edge(0, gpio.Low)
	r.advance(30 * time.Millisecond)
	r.press(1)
	if h := r.src.Health(); h.Presses != 2 || h.Glitches != 0 || len(h.Stuck) != 0 {
		t.Errorf("health %+v, want 2 presses", h)
	}
}

// TestSourceStaffKey: the staff's 请评价 key is debounced like a button and
// its presses say so.
func TestSourceStaffKey(t *testing.T) {
	r := newRig(t, Config{}, "GPIO5", "invite=GPIO26")
	r.start()
	for i := range 6 { // a bouncing contact, ending pressed
		r.edge(1, gpio.Level(i%2 == 1))
		r.advance(time.Millisecond)
	}
	r.edge(1, gpio.Low)
	r.advance(29 * time.Millisecond)
	r.noPress()
	r.advance(time.Millisecond)
	p := r.press(0)
	if !p.StaffKey {
		t.Fatalf("press of the staff key %+v without StaffKey", p)
	}
	r.edge(1, gpio.High)
	r.advance(time.Second)
	r.noPress()
	r.edge(0, gpio.Low)
	r.advance(30 * time.Millisecond)
	if p := r.press(1); p.StaffKey {
		t.Fatalf("button press %+v marked as the staff key", p)
	}
	if h := r.src.Health(); h.Presses != 2 || h.Glitches != 0 {
		t.Errorf("health %+v, want 2 presses", h)
	}
}

func TestSourceBouncingPressIsOnePress(t *testing.T) {
	var events []Event
	evc := make(chan Event, 64)
	r := newRig(t, Config{Observe: func(e Event) { evc <- e }}, "GPIO5")
	r.start()
	for i := range 12 {
		r.edge(0, gpio.Level(i%2 == 1)) // Low, High, Low, ... ending Low
		r.advance(time.Millisecond)
	}
	r.edge(0, gpio.Low)
	r.advance(30 * time.Millisecond)
	r.press(1)
	r.advance(2 * time.Second)
	r.noPress()
	// Release, bouncing too.
	r.edge(0, gpio.High)
	r.edge(0, gpio.Low)
	r.edge(0, gpio.High)
	r.advance(time.Second)
	r.noPress()
	for len(events) < 2 {
		select {
		case e := <-evc:
			events = append(events, e)
		case <-time.After(within):
			t.Fatalf("events %v, want a press and a release", events)
		}
	}
	if p := events[0]; p.Kind != Pressed || p.Edges != 13 || p.Bounce != 12*time.Millisecond {
		t.Errorf("first event %+v, want a press of 13 edges over 12ms", p)
	}
	if r := events[1]; r.Kind != Released || r.Edges != 3 {
		t.Errorf("second event %+v, want a release of 3 edges", r)
	}
}

func TestSourceGlitchIsNoPress(t *testing.T) {
	r := newRig(t, Config{}, "GPIO5")
	r.start()
	r.edge(0, gpio.Low)
	r.advance(10 * time.Millisecond)
	r.edge(0, gpio.High)
	r.advance(time.Second)
	r.noPress()
	if h := r.src.Health(); h.Presses != 0 || h.Glitches != 1 {
		t.Errorf("health %+v, want 1 glitch and no press", h)
	}
}

func TestSourceStuckReportedOnce(t *testing.T) {
	evc := make(chan Event, 64)
	r := newRig(t, Config{Observe: func(e Event) { evc <- e }}, "GPIO5")
	r.start()
	r.edge(0, gpio.Low)
	r.advance(30 * time.Millisecond)
	r.press(1)
	r.advance(5 * time.Second)
	if h := r.src.Health(); h.StuckEvents != 1 || !slices.Equal(h.Stuck, []int{1}) {
		t.Fatalf("health %+v after 5s held, want button 1 stuck once", h)
	}
	r.advance(30 * time.Second)
	r.noPress()
	if h := r.src.Health(); h.StuckEvents != 1 {
		t.Errorf("health %+v, want the stuck button reported once", h)
	}
	r.edge(0, gpio.High)
	r.advance(30 * time.Millisecond)
	r.sync(0)
	if h := r.src.Health(); len(h.Stuck) != 0 {
		t.Errorf("health %+v after release, want nothing stuck", h)
	}
	var got []EventKind
	for len(got) < 3 {
		select {
		case e := <-evc:
			got = append(got, e.Kind)
		case <-time.After(within):
			t.Fatalf("events %v, want pressed, stuck, released", got)
		}
	}
	if want := []EventKind{Pressed, Stuck, Released}; !equalKinds(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestSourceHeldAtStartIsNoPress(t *testing.T) {
	r := newRig(t, Config{Pull: gpio.Float, ActiveLow: true}, "GPIO5")
	r.pins[0].L = gpio.Low // held down before Run reads it
	r.start()
	r.advance(time.Second)
	r.noPress()
	r.edge(0, gpio.High)
	r.advance(30 * time.Millisecond)
	r.edge(0, gpio.Low)
	r.advance(30 * time.Millisecond)
	r.press(1)
}

func TestSourceActiveHigh(t *testing.T) {
	r := newRig(t, Config{Pull: gpio.PullDown, ActiveLow: false}, "GPIO5")
	if r.pins[0].P != gpio.PullDown {
		t.Errorf("pull %v, want %v", r.pins[0].P, gpio.PullDown)
	}
	r.start()
	r.edge(0, gpio.High)
	r.advance(30 * time.Millisecond)
	r.press(1)
}

func TestSourceTwoButtonsTogether(t *testing.T) {
	r := newRig(t, Config{}, "GPIO5", "GPIO6", "GPIO13", "GPIO19")
	r.start()
	r.edge(0, gpio.Low)
	r.edge(2, gpio.Low)
	r.edge(2, gpio.High) // a bounce on the second
	r.edge(2, gpio.Low)
	r.advance(30 * time.Millisecond)
	var got []int
	for range 2 {
		select {
		case p := <-r.out:
			got = append(got, p.Button)
		case <-time.After(within):
			t.Fatalf("presses %v, want buttons 1 and 3", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("presses %v, want buttons 1 and 3", got)
	}
	r.noPress()
}

func TestSourceSetsPinsUp(t *testing.T) {
	clock := clockwork.NewFakeClockAt(t0)
	p := newWaitPin("GPIO5", clock)
	_, err := NewSource(Config{
		Buttons: []Button{{Label: "a", Pin: p}}, Pull: gpio.PullUp, ActiveLow: true,
		Debounce: 30 * time.Millisecond, StuckAfter: 5 * time.Second, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.P != gpio.PullUp {
		t.Errorf("pull %v, want %v", p.P, gpio.PullUp)
	}
}

// busyPin fails to become an input, as a line another process holds.
type busyPin struct{ *gpiotest.Pin }

func (busyPin) In(gpio.Pull, gpio.Edge) error { return syscall.EBUSY }

func TestSourceBusyPin(t *testing.T) {
	ok := &gpiotest.Pin{N: "GPIO5", EdgesChan: make(chan gpio.Level)}
	busy := busyPin{&gpiotest.Pin{N: "GPIO6"}}
	_, err := NewSource(Config{
		Buttons:  []Button{{Label: "a", Pin: ok}, {Label: "b", Pin: busy}},
		Pull:     gpio.PullUp,
		Debounce: 30 * time.Millisecond, StuckAfter: 5 * time.Second,
	})
	var pe *PinError
	if !errors.As(err, &pe) || pe.Pin != "GPIO6" || !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("NewSource = %v, want a PinError for GPIO6 wrapping EBUSY", err)
	}
}

func TestNewSourceChecksConfig(t *testing.T) {
	pin := &gpiotest.Pin{N: "GPIO5", EdgesChan: make(chan gpio.Level)}
	for name, cfg := range map[string]Config{
		"no buttons":         {Debounce: time.Millisecond, StuckAfter: time.Second},
		"nil pin":            {Buttons: []Button{{Label: "a"}}, Debounce: time.Millisecond, StuckAfter: time.Second},
		"no debounce":        {Buttons: []Button{{Label: "a", Pin: pin}}, StuckAfter: time.Second},
		"stuck before bound": {Buttons: []Button{{Label: "a", Pin: pin}}, Debounce: time.Second, StuckAfter: time.Second},
	} {
		if _, err := NewSource(cfg); err == nil {
			t.Errorf("%s: NewSource succeeded", name)
		}
	}
}

func TestSourceRunsOnce(t *testing.T) {
	r := newRig(t, Config{}, "GPIO5")
	r.start()
	r.sync(0)
	if err := r.src.Run(context.Background(), r.out); err == nil {
		t.Error("second Run succeeded")
	}
}
