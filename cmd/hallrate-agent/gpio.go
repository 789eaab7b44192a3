package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"

	// The drivers a Raspberry Pi needs, and no other board's: the gpiochip
	// character device (every board; the only one on a Pi 5), the bcm283x
	// registers (pulls on a Pi Zero to 4) and the Pi's header names.
	// host.Init would link every board periph knows, 200 KB of the binary.
	_ "periph.io/x/host/v3/bcm283x"
	_ "periph.io/x/host/v3/gpioioctl"
	_ "periph.io/x/host/v3/rpi"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/device/pins"
)

// pinRole is what a configured pin is for.
type pinRole int

const (
	roleButton pinRole = iota // a button input
	roleLED                   // a button's LED
	roleWindow                // the "please rate" LED
	roleStatus                // the broker link LED
	roleBuzzer
	roleInvite // the staff's "请评价" key
)

// pinSpec is one configured pin and the configuration key that names it,
// so every error about a pin can say which key to fix.
type pinSpec struct {
	key    string // such as "buttons.very_satisfied" or "gpio.window_led"
	name   string // as configured, such as "GPIO5"
	role   pinRole
	button int // 1-based, for roleButton and roleLED
}

// pinSpecs lists the configured pins: buttons first, in order, then their
// LEDs, then the other outputs.
func pinSpecs(cfg config.Config) []pinSpec {
	var specs []pinSpec
	for i, b := range cfg.Buttons {
		specs = append(specs, pinSpec{key: "buttons." + b.Label, name: b.Pin, role: roleButton, button: i + 1})
	}
	if cfg.GPIO.InvitePin != "" {
		specs = append(specs, pinSpec{key: "gpio.invite_pin", name: cfg.GPIO.InvitePin, role: roleInvite})
	}
	for i, b := range cfg.Buttons {
		if b.LED != "" {
			specs = append(specs, pinSpec{key: "buttons." + b.Label + ".led", name: b.LED, role: roleLED, button: i + 1})
		}
	}
	for _, o := range []struct {
		key, name string
		role      pinRole
	}{
		{"gpio.window_led", cfg.GPIO.WindowLED, roleWindow},
		{"gpio.status_led", cfg.GPIO.StatusLED, roleStatus},
		{"gpio.buzzer", cfg.GPIO.Buzzer, roleBuzzer},
	} {
		if o.name != "" {
			specs = append(specs, pinSpec{key: o.key, name: o.name, role: o.role})
		}
	}
	return specs
}

// lookupPin finds spec's pin with byName (gpioreg.ByName outside tests).
func lookupPin(spec pinSpec, byName func(string) gpio.PinIO) (gpio.PinIO, error) {
	p := byName(spec.name)
	if p == nil {
		return nil, fmt.Errorf("config: %s: unknown pin %q", spec.key, spec.name)
	}
	return p, nil
}

// gpioPull returns the configured pull resistor.
func gpioPull(cfg config.Config) gpio.Pull {
	switch cfg.GPIO.Pull {
	case "down":
		return gpio.PullDown
	case "none":
		return gpio.Float
	default:
		return gpio.PullUp
	}
}

func gpioActiveLow(cfg config.Config) bool { return cfg.GPIO.ActiveLow == nil || *cfg.GPIO.ActiveLow }

// initHost loads periph's drivers: periph picks the gpioioctl character
// device (/dev/gpiochip*, the only one on a Pi 5) or the bcm283x registers,
// whichever the board offers. A machine where no driver found a pin gets
// one line saying why, not a list of unknown pins.
func initHost() error {
	state, err := driverreg.Init()
	if err != nil {
		return fmt.Errorf("gpio: start periph host drivers: %s", singleLine(err))
	}
	if len(gpioreg.All()) > 0 {
		return nil
	}
	var why []string
	for _, f := range append(state.Failed, state.Skipped...) {
		if strings.Contains(f.D.String(), "gpio") {
			why = append(why, singleLine(f))
		}
	}
	msg := "gpio: no GPIO pins on this machine"
	if len(why) > 0 {
		msg += " (" + strings.Join(why, "; ") + ")"
	}
	return errors.New(msg + `; on a Raspberry Pi the user needs read-write access to /dev/gpiochip* (group gpio); to try without buttons set device.driver = "sim"`)
}

// openGPIO builds the periph input driver and feedback from the
// configuration. The returned func turns the outputs off.
func openGPIO(cfg config.Config, log *slog.Logger) (device.Source, device.Feedback, func(), error) {
	if err := initHost(); err != nil {
		return nil, nil, nil, err
	}
	src, fb, stop, err := buildGPIO(cfg, gpioreg.ByName, clockwork.NewRealClock(), log)
	if err != nil {
		return nil, nil, nil, err
	}
	return src, fb, stop, nil
}

// buildGPIO is openGPIO once periph's drivers are loaded; byName looks pins
// up.
func buildGPIO(cfg config.Config, byName func(string) gpio.PinIO, clock clockwork.Clock, log *slog.Logger) (*pins.Source, *pins.Feedback, func(), error) {
	keys := map[string]string{} // periph's pin name -> configuration key
	sc := pins.Config{
		Pull: gpioPull(cfg), ActiveLow: gpioActiveLow(cfg),
		Debounce: cfg.GPIO.Debounce.Duration, StuckAfter: cfg.GPIO.StuckAfter.Duration,
		Clock: clock, Logger: log,
	}
	fc := pins.FeedbackConfig{
		Outputs: pins.Outputs{Buttons: make([]gpio.PinOut, len(cfg.Buttons))},
		LEDOn:   cfg.GPIO.LEDOn.Duration,
		Clock:   clock, Logger: log,
	}
	for _, s := range pinSpecs(cfg) {
		p, err := lookupPin(s, byName)
		if err != nil {
			return nil, nil, nil, err
		}
		keys[p.Name()] = s.key
		switch s.role {
		case roleButton:
			sc.Buttons = append(sc.Buttons, pins.Button{Label: cfg.Buttons[s.button-1].Label, Pin: p})
		case roleInvite:
			sc.Invite = p
		case roleLED:
			fc.Buttons[s.button-1] = p
		case roleWindow:
			fc.Window = p
		case roleStatus:
			fc.Status = p
		case roleBuzzer:
			fc.Buzzer = p
		}
	}
	src, err := pins.NewSource(sc)
	if err != nil {
		return nil, nil, nil, pinError(err, keys)
	}
	fb, err := pins.NewFeedback(fc)
	if err != nil {
		return nil, nil, nil, pinError(err, keys)
	}
	log.Info("gpio ready", "buttons", len(sc.Buttons), "staff_key", cfg.GPIO.InvitePin != "", "pull", cfg.GPIO.Pull, "active_low", sc.ActiveLow,
		"debounce", sc.Debounce, "stuck_after", sc.StuckAfter)
	return src, fb, fb.Close, nil
}

// pinError names the configuration key of a pin that could not be set up.
func pinError(err error, keys map[string]string) error {
	var pe *pins.PinError
	if !errors.As(err, &pe) {
		return fmt.Errorf("gpio: %w", err)
	}
	return fmt.Errorf("config: %s: pin %q cannot be used: %s: %s%s", keys[pe.Pin], pe.Pin, pe.Op, singleLine(pe.Err), pinHint(pe.Err))
}

// pinHint says what an installer can do about a pin error.
func pinHint(err error) string {
	switch {
	case errors.Is(err, syscall.EBUSY):
		return " (another program or a device-tree overlay holds it; see gpioinfo)"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return " (the user needs read-write access to /dev/gpiochip*: group gpio)"
	}
	return ""
}

func singleLine(v any) string { return strings.Join(strings.Fields(fmt.Sprint(v)), " ") }
