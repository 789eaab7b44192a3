package pins

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// outPin is a gpiotest.Pin that reports every write, so a test waits for the
// feedback goroutine to act instead of sleeping.
type outPin struct {
	*gpiotest.Pin
	writes chan gpio.Level
}

func newOutPin(name string) *outPin {
	return &outPin{Pin: &gpiotest.Pin{N: name}, writes: make(chan gpio.Level, 256)}
}

// Out implements gpio.PinOut.
func (p *outPin) Out(l gpio.Level) error {
	err := p.Pin.Out(l)
	select {
	case p.writes <- l:
	default: // only a flood of writes, as in TestFeedbackNeverBlocks, lands here
	}
	return err
}

// expect waits for the next write to p and checks it and the pin's level.
func (p *outPin) expect(t *testing.T, want gpio.Level) {
	t.Helper()
	p.expectWrite(t, want)
	if got := p.Read(); got != want {
		t.Fatalf("%s reads %v, want %v", p.N, got, want)
	}
}

// expectWrite waits for the next write to p and checks it.
func (p *outPin) expectWrite(t *testing.T, want gpio.Level) {
	t.Helper()
	select {
	case l := <-p.writes:
		if l != want {
			t.Fatalf("%s written %v, want %v", p.N, l, want)
		}
	case <-time.After(within):
		t.Fatalf("%s not written; want %v", p.N, want)
	}
}

// quiet checks that p has no write pending.
func (p *outPin) quiet(t *testing.T) {
	t.Helper()
	select {
	case l := <-p.writes:
		t.Fatalf("%s unexpectedly written %v", p.N, l)
	default:
	}
}

type feedbackRig struct {
	clock                  *clockwork.FakeClock
	led1, led2             *outPin
	window, status, buzzer *outPin
	fb                     *Feedback
}

func newFeedbackRig(t *testing.T) *feedbackRig {
	t.Helper()
	r := &feedbackRig{
		clock: clockwork.NewFakeClockAt(t0),
		led1:  newOutPin("GPIO17"), led2: newOutPin("GPIO27"),
		window: newOutPin("GPIO22"), status: newOutPin("GPIO23"), buzzer: newOutPin("GPIO24"),
	}
	fb, err := NewFeedback(FeedbackConfig{
		Outputs: Outputs{
			Buttons: []gpio.PinOut{r.led1, r.led2, nil},
			Window:  r.window, Status: r.status, Buzzer: r.buzzer,
		},
		LEDOn: 1500 * time.Millisecond,
		Clock: r.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.fb = fb
	t.Cleanup(fb.Close)
	// Every output is turned off first; the status LED then shows offline.
	for _, p := range []*outPin{r.led1, r.led2, r.window, r.status, r.buzzer} {
		p.expectWrite(t, gpio.Low)
	}
	r.status.expect(t, gpio.High)
	return r
}

func TestFeedbackRecorded(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.Recorded(1)
	r.led1.expect(t, gpio.High)
	r.buzzer.expect(t, gpio.High)
	r.clock.Advance(60 * time.Millisecond)
	r.buzzer.expect(t, gpio.Low)
	r.clock.Advance(40 * time.Millisecond) // the offline blip ends
	r.status.expect(t, gpio.Low)
	r.clock.Advance(1400*time.Millisecond - time.Nanosecond)
	r.led1.quiet(t)
	r.clock.Advance(time.Nanosecond)
	r.led1.expect(t, gpio.Low)
	r.led2.quiet(t)
	r.window.quiet(t)
}

func TestFeedbackButtonWithoutLED(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.Recorded(3)
	r.buzzer.expect(t, gpio.High)
	r.fb.Recorded(0)
	r.fb.Recorded(99)
	r.led1.quiet(t)
	r.led2.quiet(t)
}

func TestFeedbackFailed(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.Failed(2)
	r.led2.expect(t, gpio.High)
	r.buzzer.expect(t, gpio.High)
	r.clock.Advance(100 * time.Millisecond)
	r.status.expect(t, gpio.Low)
	r.clock.Advance(25 * time.Millisecond)
	r.led2.expect(t, gpio.Low)
	r.clock.Advance(125 * time.Millisecond)
	r.led2.expect(t, gpio.High)
	r.clock.Advance(350 * time.Millisecond)
	r.buzzer.expect(t, gpio.Low)
	r.clock.Advance(900 * time.Millisecond)
	r.led2.expect(t, gpio.Low) // the flicker ends at 1.5s, dark
	r.clock.Advance(time.Second)
	r.led2.quiet(t)
}

func TestFeedbackRatingWindow(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.RatingWindow(true)
	r.window.expect(t, gpio.High)
	r.clock.Advance(100 * time.Millisecond)
	r.status.expect(t, gpio.Low)
	r.clock.Advance(400 * time.Millisecond)
	r.window.expect(t, gpio.Low)
	r.clock.Advance(500 * time.Millisecond)
	r.window.expect(t, gpio.High)
	r.fb.RatingWindow(true) // again: the blink goes on undisturbed
	r.fb.RatingWindow(false)
	r.window.expect(t, gpio.Low)
	r.clock.Advance(5 * time.Second)
	r.window.quiet(t)
}

// While the terminal asks for a reason every button LED blinks; the LED of
// the press just recorded stays lit its time first.
func TestFeedbackAskReason(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.Recorded(2)
	r.led2.expect(t, gpio.High)
	r.buzzer.expect(t, gpio.High)
	r.fb.AskReason(true)
	r.led1.expect(t, gpio.High)
	r.clock.Advance(60 * time.Millisecond)
	r.buzzer.expect(t, gpio.Low)
	r.clock.Advance(40 * time.Millisecond)
	r.status.expect(t, gpio.Low)
	r.clock.Advance(400 * time.Millisecond)
	r.led1.expect(t, gpio.Low)
	r.clock.Advance(500 * time.Millisecond)
	r.led1.expect(t, gpio.High)
	r.clock.Advance(500 * time.Millisecond) // 1.5s: led2's thank-you ends, it joins the blink (off half)
	r.led1.expect(t, gpio.Low)
	r.led2.expect(t, gpio.Low)
	r.clock.Advance(500 * time.Millisecond)
	r.led1.expect(t, gpio.High)
	r.led2.expect(t, gpio.High)
	r.fb.AskReason(false)
	r.led1.expect(t, gpio.Low)
	r.led2.expect(t, gpio.Low)
	r.clock.Advance(5 * time.Second)
	r.led1.quiet(t)
	r.led2.quiet(t)
	r.window.quiet(t)
}

func TestFeedbackOnline(t *testing.T) {
	r := newFeedbackRig(t)
	r.clock.Advance(100 * time.Millisecond)
	r.status.expect(t, gpio.Low)
	r.clock.Advance(1900 * time.Millisecond) // offline: a blip every 2s
	r.status.expect(t, gpio.High)
	r.fb.Online(true)
	r.clock.Advance(100 * time.Millisecond)
	r.status.quiet(t) // steady while online
	r.clock.Advance(10 * time.Second)
	r.status.quiet(t)
	r.fb.Online(false)
	r.clock.Advance(100 * time.Millisecond)
	r.status.expect(t, gpio.Low)
}

func TestFeedbackCloseTurnsOff(t *testing.T) {
	r := newFeedbackRig(t)
	r.fb.Recorded(1)
	r.fb.RatingWindow(true)
	r.fb.Online(true)
	r.led1.expect(t, gpio.High)
	r.buzzer.expect(t, gpio.High)
	r.window.expect(t, gpio.High)
	r.fb.Close()
	r.fb.Close()
	for _, p := range []*outPin{r.led1, r.window, r.status, r.buzzer} {
		if p.Read() != gpio.Low {
			t.Errorf("%s still on after Close", p.N)
		}
	}
	r.fb.Recorded(1) // after Close: no effect, no block
}

func TestFeedbackNeverBlocks(t *testing.T) {
	r := newFeedbackRig(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10000 {
			r.fb.Recorded(i%3 + 1)
			r.fb.RatingWindow(i%2 == 0)
			r.fb.Online(i%2 == 1)
		}
	}()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatal("feedback methods blocked")
	}
}

// failPin is an output that cannot be driven.
type failPin struct{ *gpiotest.Pin }

func (failPin) Out(gpio.Level) error { return syscall.EBUSY }

func TestFeedbackBusyPin(t *testing.T) {
	_, err := NewFeedback(FeedbackConfig{
		Outputs: Outputs{Window: failPin{&gpiotest.Pin{N: "GPIO22"}}},
		LEDOn:   time.Second,
	})
	var pe *PinError
	if !errors.As(err, &pe) || pe.Pin != "GPIO22" {
		t.Fatalf("NewFeedback = %v, want a PinError for GPIO22", err)
	}
}

func TestFeedbackNothingWired(t *testing.T) {
	fb, err := NewFeedback(FeedbackConfig{LEDOn: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fb.Recorded(1)
	fb.Failed(1)
	fb.RatingWindow(true)
	fb.Online(true)
	fb.Close()
}

func TestBlink(t *testing.T) {
	start := t0
	for _, tc := range []struct {
		at   time.Duration
		end  time.Duration
		on   bool
		next time.Duration
	}{
		{0, 0, true, 100 * time.Millisecond},
		{99 * time.Millisecond, 0, true, 100 * time.Millisecond},
		{100 * time.Millisecond, 0, false, 2 * time.Second},
		{2 * time.Second, 0, true, 2100 * time.Millisecond},
		{2050 * time.Millisecond, 2080 * time.Millisecond, true, 2080 * time.Millisecond},
		{3 * time.Second, 2 * time.Second, false, -1},
	} {
		var end time.Time
		if tc.end > 0 {
			end = start.Add(tc.end)
		}
		on, next := blink(start.Add(tc.at), start, 100*time.Millisecond, 2*time.Second, end)
		wantNext := start.Add(tc.next)
		if tc.next < 0 {
			wantNext = time.Time{}
		}
		if on != tc.on || !next.Equal(wantNext) {
			t.Errorf("blink at +%v end +%v = %v %v, want %v %v", tc.at, tc.end, on, next, tc.on, wantNext)
		}
	}
}
