package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/hallrate/hallrate/agent/statushttp"
	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/internal/cli"
)

const provisionSummary = `Write this terminal's configuration, complete and commented, from flags,
or by asking when standard input is a terminal and a required value is
missing. The file is checked by loading it back as the agent would. An
existing file is replaced only with -force (except the unprovisioned example
the package installs). Then run selftest and enable the service.`

// unprovisionedMarker opens the example configuration that the package
// installs; provision replaces such a file without -force.
const unprovisionedMarker = "# hallrate-agent: example configuration, NOT provisioned"

// buttonList is the repeatable -button flag: label:satisfaction:pin[:led].
type buttonList []config.Button

func (b *buttonList) String() string {
	var parts []string
	for _, x := range *b {
		s := fmt.Sprintf("%s:%d:%s", x.Label, x.Satisfaction, x.Pin)
		if x.LED != "" {
			s += ":" + x.LED
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func (b *buttonList) Set(v string) error {
	f := strings.Split(v, ":")
	if len(f) < 2 || len(f) > 4 {
		return fmt.Errorf("%q is not label:satisfaction[:pin[:led]]", v)
	}
	sat, err := strconv.Atoi(f[1])
	if err != nil {
		return fmt.Errorf("%q: satisfaction %q is not a number", v, f[1])
	}
	x := config.Button{Label: f[0], Satisfaction: sat}
	if len(f) > 2 {
		x.Pin = f[2]
	}
	if len(f) > 3 {
		x.LED = f[3]
	}
	*b = append(*b, x)
	return nil
}

// provisionInput is what the flags and the questions gather.
type provisionInput struct {
	cfg        config.Config
	path       string
	force, ask bool
	now        time.Time
}

func cmdProvision(_ context.Context, args []string, io cli.IO) error {
	fs := program().Flags("provision", provisionSummary, io)
	def := config.Default()
	p := provisionInput{cfg: def, now: time.Now()}
	c := &p.cfg
	fs.StringVar(&p.path, "config", config.DefaultPath, "configuration file to write")
	fs.BoolVar(&p.force, "force", false, "replace an existing configuration file")
	interactive := fs.Bool("interactive", false, "ask for missing values even when standard input is not a terminal")
	fs.StringVar(&c.Device.ID, "id", "", "device id, unique per terminal, e.g. w05-a (required)")
	fs.StringVar(&c.Device.Hall, "hall", "", "hall id, e.g. h1 (required)")
	fs.StringVar(&c.Device.Counter, "counter", "", "counter (window) id, e.g. W05 (required)")
	fs.StringVar(&c.Device.Driver, "driver", def.Device.Driver, `input driver: "gpio" or "sim"`)
	fs.StringVar(&c.MQTT.Broker, "broker", "", "hall broker URL: tcp://, ssl://, mqtts://, ws://, wss:// (required)")
	fs.StringVar(&c.MQTT.TopicPrefix, "topic-prefix", def.MQTT.TopicPrefix, "topic prefix")
	fs.StringVar(&c.MQTT.Username, "username", "", "MQTT user name")
	fs.StringVar(&c.MQTT.PasswordFile, "password-file", "", "file holding the MQTT password (readable by the service user)")
	fs.StringVar(&c.MQTT.CAFile, "ca-file", "", "TLS: CA of the broker's certificate (system roots when empty)")
	fs.StringVar(&c.MQTT.CertFile, "cert-file", "", "TLS: client certificate, for mutual TLS")
	fs.StringVar(&c.MQTT.KeyFile, "key-file", "", "TLS: client key, for mutual TLS")
	fs.StringVar(&c.Buffer.Path, "outbox", def.Buffer.Path, "outbox file")
	fs.Int64Var(&c.Buffer.MaxRecords, "max-records", def.Buffer.MaxRecords, "outbox alarm threshold (never a drop)")
	fs.DurationVar(&c.Binding.RatingWindow.Duration, "rating-window", def.Binding.RatingWindow.Duration, "how long presses count after the ticket is done")
	var buttons buttonList
	fs.Var(&buttons, "button", "a button as label:satisfaction:pin[:led], repeated 3 to 6 times in press order (default the national four on GPIO5, 6, 13, 19)")
	fs.StringVar(&c.GPIO.Pull, "pull", def.GPIO.Pull, `button pull resistor: "up", "down" or "none"`)
	activeLow := fs.Bool("active-low", *def.GPIO.ActiveLow, "a pressed button pulls its pin low (button to ground)")
	fs.DurationVar(&c.GPIO.Debounce.Duration, "debounce", def.GPIO.Debounce.Duration, "contact bounce filter")
	fs.StringVar(&c.HTTP.Listen, "http-listen", statushttp.DefaultListen, `local status endpoint (/healthz, /metrics, /status); "" disables it`)
	fs.StringVar(&c.Log.Level, "log-level", def.Log.Level, "debug, info, warn or error")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	c.Buttons = buttons
	if len(c.Buttons) == 0 {
		c.Buttons = config.DefaultButtons()
	}
	c.GPIO.ActiveLow = activeLow
	p.ask = *interactive || isTerminal(io.In)
	if err := p.complete(io); err != nil {
		return err
	}
	return p.write(io)
}

// complete asks for what is missing, or says what is missing.
func (p *provisionInput) complete(io cli.IO) error {
	c := &p.cfg
	required := []struct {
		flag, question string
		v              *string
	}{
		{"id", "Device id, unique per terminal (e.g. w05-a)", &c.Device.ID},
		{"hall", "Hall id (e.g. h1)", &c.Device.Hall},
		{"counter", "Counter (window) id (e.g. W05)", &c.Device.Counter},
		{"broker", "Hall broker URL (e.g. tcp://10.0.0.2:1883 or mqtts://broker.hall:8883)", &c.MQTT.Broker},
	}
	var missing []string
	for _, r := range required {
		if *r.v == "" {
			missing = append(missing, "-"+r.flag)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !p.ask {
		fmt.Fprintf(io.Err, "provision: missing %s (or run it on a terminal to be asked)\n", strings.Join(missing, ", "))
		return cli.ErrUsage
	}
	in := bufio.NewReader(io.In)
	for _, r := range required {
		if *r.v != "" {
			continue
		}
		v, err := ask(in, io.Out, r.question, "")
		if err != nil {
			return err
		}
		*r.v = v
	}
	driver, err := ask(in, io.Out, `Input driver, "gpio" for buttons or "sim" to type presses`, c.Device.Driver)
	if err != nil {
		return err
	}
	c.Device.Driver = driver
	if scheme, _, _ := strings.Cut(c.MQTT.Broker, "://"); isTLS(scheme) && c.MQTT.CAFile == "" {
		if c.MQTT.CAFile, err = ask(in, io.Out, "CA file of the broker's certificate (empty: system roots)", ""); err != nil {
			return err
		}
	}
	return nil
}

// ask prints a question and reads one answer; an empty answer takes def.
func ask(in *bufio.Reader, out io.Writer, question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(out, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(out, "%s: ", question)
	}
	line, err := in.ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", fmt.Errorf("provision: read answer: %w", err)
	}
	if v := strings.TrimSpace(line); v != "" {
		return v, nil
	}
	return def, nil
}

func isTLS(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "wss":
		return true
	}
	return false
}

// isTerminal reports whether r is a terminal, where questions make sense.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *provisionInput) write(io cli.IO) error {
	body, err := renderConfig(p.cfg, p.now)
	if err != nil {
		return err
	}
	// Check before touching the file, so that a bad value never replaces
	// a working configuration.
	if _, err := config.Parse(body); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	if err := p.mayWrite(); err != nil {
		return err
	}
	if err := writeFileAtomic(p.path, body, 0o644); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	got, err := config.Load(p.path)
	if err != nil {
		return fmt.Errorf("provision: %s was written but does not load back: %w", p.path, err)
	}
	if got.Device.ID != p.cfg.Device.ID || got.MQTT.Broker != p.cfg.MQTT.Broker || len(got.Buttons) != len(p.cfg.Buttons) {
		return fmt.Errorf("provision: %s loads back different from what was asked for", p.path)
	}
	p.warnMissingFiles(io)
	p.nextSteps(io)
	return nil
}

// mayWrite refuses to replace a configuration without -force, unless it is
// the unprovisioned example.
func (p *provisionInput) mayWrite() error {
	old, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("provision: %w", err)
	case p.force || bytes.HasPrefix(old, []byte(unprovisionedMarker)):
		return nil
	}
	return fmt.Errorf("provision: %s already exists; use -force to replace it", p.path)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

func (p *provisionInput) warnMissingFiles(io cli.IO) {
	m := p.cfg.MQTT
	for _, f := range []struct{ key, path string }{
		{"mqtt.password_file", m.PasswordFile}, {"mqtt.ca_file", m.CAFile},
		{"mqtt.cert_file", m.CertFile}, {"mqtt.key_file", m.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			fmt.Fprintf(io.Err, "warning: %s: %v; the agent will not start until it exists\n", f.key, err)
		}
	}
}

func (p *provisionInput) nextSteps(io cli.IO) {
	c := p.cfg
	cfgFlag := ""
	if p.path != config.DefaultPath {
		cfgFlag = " --config " + p.path
	}
	fmt.Fprintf(io.Out, "Wrote %s: terminal %s, hall %s, counter %s, broker %s, driver %s.\n\n",
		p.path, c.Device.ID, c.Device.Hall, c.Device.Counter, redact(c.MQTT.Broker), c.Device.Driver)
	fmt.Fprintln(io.Out, "Next:")
	fmt.Fprintf(io.Out, "  1. check the wiring (press every button):  hallrate-agent selftest%s\n", cfgFlag)
	fmt.Fprintln(io.Out, "  2. start it now and at every boot:        systemctl enable --now hallrate-agent")
	fmt.Fprintf(io.Out, "  3. see that it is connected:              hallrate-agent status%s\n", cfgFlag)
	fmt.Fprintln(io.Out, "     and its log:                           journalctl -u hallrate-agent -f")
	if c.MQTT.PasswordFile != "" || c.MQTT.KeyFile != "" {
		fmt.Fprintln(io.Out, "The password and key files must be readable by the service user hallrate (e.g. root:hallrate 0640).")
	}
}

// renderConfig writes the configuration file. It is written out with
// fmt rather than text/template: text/template's method calls by name keep
// every exported method of the binary alive, 1.8 MB of the armv6 build.
func renderConfig(c config.Config, now time.Time) ([]byte, error) {
	q := tomlString
	activeLow := c.GPIO.ActiveLow == nil || *c.GPIO.ActiveLow
	var b bytes.Buffer
	fmt.Fprintf(&b, `# hallrate-agent configuration, written by "hallrate-agent provision" on %s.
# Check it with "hallrate-agent selftest"; the agent reads it at start
# (systemctl restart hallrate-agent after a change).

[device]
id      = %s      # unique per terminal: [A-Za-z0-9._-]{1,64}
hall    = %s
counter = %s
driver  = %s  # "gpio" (buttons) or "sim" (button numbers on standard input)
# key_file = ""     # signing key; default device.key beside the outbox, made on first start
`, now.Format(time.DateOnly), q(c.Device.ID), q(c.Device.Hall), q(c.Device.Counter), q(c.Device.Driver))
	fmt.Fprintf(&b, `
[mqtt]
broker          = %s  # tcp://, ssl:// or mqtts:// (TLS), ws://, wss://
topic_prefix    = %s
username        = %s
password_file   = %s  # the password is kept in a file, never here
ca_file         = %s  # TLS: CA of the broker's certificate (system roots when empty)
cert_file       = %s  # TLS client certificate and key, for mutual TLS
key_file        = %s
keepalive       = %s
inflight        = %d      # records published and not yet acknowledged
status_interval = %s  # how often the retained status is refreshed
`, q(c.MQTT.Broker), q(c.MQTT.TopicPrefix), q(c.MQTT.Username), q(c.MQTT.PasswordFile),
		q(c.MQTT.CAFile), q(c.MQTT.CertFile), q(c.MQTT.KeyFile), q(c.MQTT.KeepAlive.String()),
		c.MQTT.Inflight, q(c.MQTT.StatusInterval.String()))
	fmt.Fprintf(&b, `
[buffer]
path        = %s
max_records = %d  # alarm threshold, never a drop

[binding]
rating_window = %s  # how long presses count after the ticket is done

[gpio]
pull        = %s     # "up", "down" or "none"
active_low  = %t     # true: a pressed button connects its pin to ground
debounce    = %s
stuck_after = %s  # a button held longer is reported stuck
led_on      = %s  # how long a thank-you light stays on
# window_led = ""   # lit while a press would be counted
# status_led = ""   # lit while the broker link is up
# buzzer     = ""

[http]
# Local status endpoint: /healthz, /metrics (Prometheus), /status (JSON, read
# by "hallrate-agent status"). Keep it on loopback; "" disables it.
listen = %s

[log]
level = %s  # debug, info, warn, error

# Buttons, 3 to 6, in the order presses number them; satisfaction is the
# national code (5 very satisfied ... 1 very dissatisfied).
`, q(c.Buffer.Path), c.Buffer.MaxRecords, q(c.Binding.RatingWindow.String()),
		q(c.GPIO.Pull), activeLow, q(c.GPIO.Debounce.String()), q(c.GPIO.StuckAfter.String()),
		q(c.GPIO.LEDOn.String()), q(c.HTTP.Listen), q(c.Log.Level))
	for _, btn := range c.Buttons {
		fmt.Fprintf(&b, "\n[[buttons]]\nlabel        = %s\nsatisfaction = %d\npin          = %s",
			q(btn.Label), btn.Satisfaction, q(btn.Pin))
		if btn.LED != "" {
			fmt.Fprintf(&b, "\nled          = %s", q(btn.LED))
		}
		b.WriteString("\n")
	}
	return b.Bytes(), nil
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || !unicode.IsPrint(r) && r < 0x80:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

var _ flag.Value = (*buttonList)(nil)
