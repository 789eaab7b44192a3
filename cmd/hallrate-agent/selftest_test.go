package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"

	"github.com/hallrate/hallrate/internal/cli"
)

// selftestPatience bounds each wait of these tests; it is a deadline, not a
// delay.
const selftestPatience = 5 * time.Second

// writeSimConfig writes a sim-driver configuration and returns its path.
func writeSimConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	body := strings.Replace(gpioConfig, "OUTBOX", filepath.Join(dir, "outbox.db"), 1)
	body = strings.Replace(body, `driver = "gpio"`, `driver = "sim"`, 1)
	path := filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSelftestSimPass(t *testing.T) {
	var out, errb bytes.Buffer
	err := cmdSelftest(context.Background(), []string{"--config", writeSimConfig(t)},
		cli.IO{In: strings.NewReader("1\n2\n3\n4\n"), Out: &out, Err: &errb})
	if err != nil {
		t.Fatalf("selftest: %v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"button 1 very_satisfied seen (sim)", "button 4 dissatisfied seen (sim)", "PASS: all 4 checks passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSelftestSimFail(t *testing.T) {
	var out, errb bytes.Buffer
	err := cmdSelftest(context.Background(), []string{"--config", writeSimConfig(t), "-timeout", "50ms"},
		cli.IO{In: strings.NewReader("1\n3\nnonsense\n"), Out: &out, Err: &errb})
	if err == nil || err.Error() != "selftest: FAIL: 3 of 4 checks failed" {
		t.Fatalf("selftest = %v, want 3 of 4 failed\n%s", err, out.String())
	}
	for _, want := range []string{
		"FAIL  button 2 satisfied: button 3 basic was typed instead",
		"FAIL  button 4 dissatisfied: no press seen within 50ms",
		"FAIL: 3 of 4 checks failed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errb.String(), "sim input ignored") {
		t.Errorf("the nonsense line was not reported:\n%s", errb.String())
	}
}

func TestSelftestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	err := program().Dispatch(context.Background(), []string{"selftest", "-h"}, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("selftest -h = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"usage: hallrate-agent selftest", "-timeout", "-config", "PASS or FAIL"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestSelftestBadFlags(t *testing.T) {
	var out, errb bytes.Buffer
	err := cmdSelftest(context.Background(), []string{"-timeout", "0s"}, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if !errors.Is(err, cli.ErrUsage) {
		t.Errorf("selftest -timeout 0s = %v, want a usage error", err)
	}
}

// chunkWriter keeps what is written and hands each write to a reader, so a
// test can act when a prompt appears.
type chunkWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	chunks chan string
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.chunks <- string(p)
	return len(p), nil
}

func (w *chunkWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSelftestGPIO runs the wiring check over gpiotest pins: the "person"
// presses each button with some contact bounce when asked, and says the
// button LED lit and the window LED did not.
func TestSelftestGPIO(t *testing.T) {
	cfg := parseGPIOConfig(t, `
[gpio]
debounce = "5ms"
window_led = "GPIO22"

[[buttons]]
label = "very_satisfied"
satisfaction = 5
pin = "GPIO5"
led = "GPIO17"
[[buttons]]
label = "satisfied"
satisfaction = 4
pin = "GPIO6"
[[buttons]]
label = "basic"
satisfaction = 3
pin = "GPIO13"
`)
	h := newFakeHeader()
	out := &chunkWriter{chunks: make(chan string, 256)}
	st := &selftest{
		cfg: cfg, path: "test.toml", in: strings.NewReader("y\nn\n"), out: out,
		timeout: selftestPatience, light: time.Millisecond, confirm: true,
		log:      slog.New(slog.DiscardHandler),
		initHost: func() error { return nil }, byName: h.byName, clock: clockwork.NewRealClock(),
	}
	// The person at the terminal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	person := make(chan error, 1)
	go func() {
		prompt := regexp.MustCompile(`\(pin (GPIO\d+)\)`)
		var held string
		send := func(pin string, levels ...gpio.Level) error {
			for _, l := range levels {
				select {
				case h.pin(pin).EdgesChan <- l:
				case <-time.After(selftestPatience):
					return errors.New(pin + " did not take an edge")
				}
			}
			return nil
		}
		for {
			select {
			case <-ctx.Done():
				person <- nil
				return
			case c := <-out.chunks:
				m := prompt.FindStringSubmatch(c)
				if m == nil || !strings.Contains(c, "Now press") {
					continue
				}
				if held != "" {
					if err := send(held, gpio.High); err != nil {
						person <- err
						return
					}
				}
				held = m[1]
				if err := send(held, gpio.Low, gpio.High, gpio.Low); err != nil {
					person <- err
					return
				}
			}
		}
	}()
	err := st.run(ctx)
	cancel()
	if perr := <-person; perr != nil {
		t.Fatal(perr)
	}
	if err == nil || err.Error() != "selftest: FAIL: 1 of 10 checks failed" {
		t.Fatalf("selftest = %v, want 1 of 10 failed\n%s", err, out.String())
	}
	for _, want := range []string{
		"ok    buttons.very_satisfied: GPIO5 input, pull up, reads released",
		"ok    buttons.very_satisfied.led: GPIO17 output, off",
		"ok    button 1 very_satisfied seen on GPIO5: 3 edge(s), contact bounce",
		"ok    button 3 basic seen on GPIO13: 3 edge(s)",
		"ok    buttons.very_satisfied.led: GPIO17 seen to light up",
		"FAIL  gpio.window_led: GPIO22 did not light up",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if h.pin("GPIO17").Read() != gpio.Low || h.pin("GPIO22").Read() != gpio.Low {
		t.Error("a light was left on")
	}
}

func TestSelftestGPIOUnknownPins(t *testing.T) {
	cfg := parseGPIOConfig(t, `
[[buttons]]
label = "very_satisfied"
satisfaction = 5
pin = "GPIO95"
[[buttons]]
label = "satisfied"
satisfaction = 4
pin = "GPIO96"
[[buttons]]
label = "basic"
satisfaction = 3
pin = "GPIO97"
`)
	var out bytes.Buffer
	st := &selftest{
		cfg: cfg, path: "test.toml", in: strings.NewReader(""), out: &out,
		timeout: selftestPatience, light: time.Millisecond, confirm: true,
		log:      slog.New(slog.DiscardHandler),
		initHost: func() error { return nil }, byName: newFakeHeader().byName, clock: clockwork.NewRealClock(),
	}
	err := st.run(context.Background())
	if err == nil || err.Error() != "selftest: FAIL: 6 of 6 checks failed" {
		t.Fatalf("selftest = %v, want 6 of 6 failed\n%s", err, out.String())
	}
	for _, want := range []string{
		`FAIL  buttons.very_satisfied: unknown pin "GPIO95"`,
		"FAIL  button 1 very_satisfied: not tried, its pin GPIO95 did not open",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSelftestNoGPIO(t *testing.T) {
	var out bytes.Buffer
	st := &selftest{
		cfg: parseGPIOConfig(t, ""), path: "test.toml", in: strings.NewReader(""), out: &out,
		timeout: selftestPatience, light: time.Millisecond,
		log:      slog.New(slog.DiscardHandler),
		initHost: func() error { return errors.New("gpio: no GPIO pins on this machine") },
		byName:   newFakeHeader().byName, clock: clockwork.NewRealClock(),
	}
	if err := st.run(context.Background()); err == nil || err.Error() != "selftest: FAIL: 1 of 1 checks failed" {
		t.Fatalf("selftest = %v, want 1 of 1 failed\n%s", err, out.String())
	}
}

// TestSelftestBinarySim runs the built command with button numbers on its
// standard input, as on a laptop.
func TestSelftestBinarySim(t *testing.T) {
	bin := gpioBuildBinary(t)
	path := writeSimConfig(t)
	for _, tc := range []struct {
		stdin, want string
		code        int
	}{
		{"1\n2\n3\n4\n", "PASS: all 4 checks passed", 0},
		{"2\n", "FAIL: 4 of 4 checks failed", 1},
	} {
		cmd := exec.Command(bin, "selftest", "--config", path, "-timeout", "100ms")
		cmd.Stdin = strings.NewReader(tc.stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.WaitDelay = 10 * time.Second
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("stdin %q: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s",
				tc.stdin, code, tc.code, tc.want, stdout.String(), stderr.String())
		}
	}
}
