package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/hallrate/hallrate/config"
)

const gpioConfig = `
[device]
id = "w05-a"
hall = "h1"
counter = "W05"
driver = "gpio"

[buffer]
path = "OUTBOX"
`

// parseGPIOConfig parses gpioConfig with extra appended.
func parseGPIOConfig(t *testing.T, extra string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(gpioConfig + extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fakeHeader is a registry of gpiotest pins GPIO0..GPIO27, looked up the
// way gpioreg.ByName does.
type fakeHeader map[string]gpio.PinIO

func newFakeHeader() fakeHeader {
	h := fakeHeader{}
	for n := range 28 {
		name := fmt.Sprintf("GPIO%d", n)
		h[name] = &gpiotest.Pin{N: name, Num: n, EdgesChan: make(chan gpio.Level)}
	}
	return h
}

func (h fakeHeader) byName(name string) gpio.PinIO {
	if p, ok := h[name]; ok {
		return p
	}
	return nil
}

func (h fakeHeader) pin(name string) *gpiotest.Pin { return h[name].(*gpiotest.Pin) }

// busyHeaderPin is held by another program.
type busyHeaderPin struct{ *gpiotest.Pin }

func (busyHeaderPin) In(gpio.Pull, gpio.Edge) error { return syscall.EBUSY }
func (busyHeaderPin) Out(gpio.Level) error          { return syscall.EBUSY }

func TestBuildGPIOPinErrors(t *testing.T) {
	for _, tc := range []struct {
		name, extra, busy, want string
	}{
		{"unknown button pin", `
[[buttons]]
label = "very_satisfied"
satisfaction = 5
pin = "GPIO99"
[[buttons]]
label = "satisfied"
satisfaction = 4
pin = "GPIO6"
[[buttons]]
label = "basic"
satisfaction = 3
pin = "GPIO13"
`, "", `config: buttons.very_satisfied: unknown pin "GPIO99"`},
		{"unknown LED pin", `
[[buttons]]
label = "very_satisfied"
satisfaction = 5
pin = "GPIO5"
led = "LED7"
[[buttons]]
label = "satisfied"
satisfaction = 4
pin = "GPIO6"
[[buttons]]
label = "basic"
satisfaction = 3
pin = "GPIO13"
`, "", `config: buttons.very_satisfied.led: unknown pin "LED7"`},
		{"unknown window LED", "[gpio]\nwindow_led = \"GPIO98\"\n", "", `config: gpio.window_led: unknown pin "GPIO98"`},
		{"busy staff key", "[gpio]\ninvite_pin = \"GPIO26\"\n", "GPIO26",
			`config: gpio.invite_pin: pin "GPIO26" cannot be used: set up as input with PullUp and both edges: device or resource busy (another program or a device-tree overlay holds it; see gpioinfo)`},
		{"busy button", "", "GPIO6",
			`config: buttons.satisfied: pin "GPIO6" cannot be used: set up as input with PullUp and both edges: device or resource busy (another program or a device-tree overlay holds it; see gpioinfo)`},
		{"busy buzzer", "[gpio]\nbuzzer = \"GPIO24\"\n", "GPIO24",
			`config: gpio.buzzer: pin "GPIO24" cannot be used: set up as output: device or resource busy (another program or a device-tree overlay holds it; see gpioinfo)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHeader()
			if tc.busy != "" {
				h[tc.busy] = busyHeaderPin{h.pin(tc.busy)}
			}
			_, _, _, err := buildGPIO(parseGPIOConfig(t, tc.extra), h.byName, clockwork.NewFakeClock(), slog.New(slog.DiscardHandler))
			if err == nil || err.Error() != tc.want {
				t.Errorf("buildGPIO error\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestBuildGPIO(t *testing.T) {
	cfg := parseGPIOConfig(t, `
[gpio]
pull = "up"
invite_pin = "GPIO26"
window_led = "GPIO22"
status_led = "GPIO23"
buzzer = "GPIO24"

[[buttons]]
label = "very_satisfied"
satisfaction = 5
pin = "GPIO5"
led = "GPIO17"
[[buttons]]
label = "satisfied"
satisfaction = 4
pin = "GPIO6"
led = "GPIO27"
[[buttons]]
label = "basic"
satisfaction = 3
pin = "GPIO13"
`)
	h := newFakeHeader()
	h.pin("GPIO17").L = gpio.High // left on by a previous run
	src, fb, stop, err := buildGPIO(cfg, h.byName, clockwork.NewFakeClock(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if src == nil || fb == nil {
		t.Fatal("no source or feedback")
	}
	for _, n := range []string{"GPIO5", "GPIO6", "GPIO13", "GPIO26"} {
		if p := h.pin(n); p.P != gpio.PullUp {
			t.Errorf("%s pull %v, want %v", n, p.P, gpio.PullUp)
		}
	}
	if h.pin("GPIO17").Read() != gpio.Low {
		t.Error("button LED not turned off at start")
	}
	if h.pin("GPIO19").P != gpio.PullNoChange {
		t.Error("an unconfigured pin was touched")
	}
}

func TestGPIOPull(t *testing.T) {
	for in, want := range map[string]gpio.Pull{"up": gpio.PullUp, "down": gpio.PullDown, "none": gpio.Float} {
		cfg := parseGPIOConfig(t, "[gpio]\npull = \""+in+"\"\n")
		if got := gpioPull(cfg); got != want {
			t.Errorf("pull %q = %v, want %v", in, got, want)
		}
	}
}

func TestPinHint(t *testing.T) {
	if h := pinHint(syscall.EACCES); !strings.Contains(h, "gpio") {
		t.Errorf("EACCES hint %q does not mention the gpio group", h)
	}
	if h := pinHint(errors.New("other")); h != "" {
		t.Errorf("hint for an unknown error: %q", h)
	}
}

// gpioBuildBinary builds the real binary into a temporary directory.
func gpioBuildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "hallrate-agent")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestRunWithoutGPIO runs the real binary with driver = "gpio" on a machine
// without GPIO: one clear line, a non-zero exit, no panic.
func TestRunWithoutGPIO(t *testing.T) {
	if chips, _ := filepath.Glob("/dev/gpiochip*"); len(chips) > 0 {
		t.Skip("this machine has GPIO")
	}
	bin := gpioBuildBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	body := strings.Replace(gpioConfig, "OUTBOX", filepath.Join(dir, "outbox.db"), 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("run = %v, want exit status 1; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "hallrate-agent: gpio: no GPIO pins on this machine") ||
		!strings.Contains(lines[0], `device.driver = "sim"`) {
		t.Errorf("stderr is not one clear line:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "panic") || stdout.Len() > 0 {
		t.Errorf("unexpected output; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
