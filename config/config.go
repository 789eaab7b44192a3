// Package config loads and checks the agent's TOML configuration. Every
// error names the key at fault in one line, for example
// "config: mqtt.brokr: unknown key".
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/hallrate/hallrate/internal/duration"
	"github.com/hallrate/hallrate/record"
)

// DefaultPath is where the agent looks for its configuration.
const DefaultPath = "/etc/hallrate/agent.toml"

// Config is the agent configuration.
type Config struct {
	Device  Device   `toml:"device"`
	MQTT    MQTT     `toml:"mqtt"`
	Buffer  Buffer   `toml:"buffer"`
	Binding Binding  `toml:"binding"`
	Buttons []Button `toml:"buttons"`
	GPIO    GPIO     `toml:"gpio"`
	HTTP    HTTP     `toml:"http"`
	Log     Log      `toml:"log"`
	Reasons Reasons  `toml:"reasons"`
	Voice   Voice    `toml:"voice"`
}

// Device identifies the terminal and selects its input driver.
type Device struct {
	ID      string `toml:"id"`
	Hall    string `toml:"hall"`
	Counter string `toml:"counter"`
	Driver  string `toml:"driver"` // "gpio" or "sim"
	// KeyFile is the ed25519 key that signs every record; default
	// device.key beside the outbox. Made on first start.
	KeyFile string `toml:"key_file"`
	// Staff names the staff member at this terminal on the tickets its
	// staff key makes (optional).
	Staff string `toml:"staff"`
}

// KeyPath returns device.key_file, or its default beside the outbox.
func (c *Config) KeyPath() string {
	if c.Device.KeyFile != "" {
		return c.Device.KeyFile
	}
	return filepath.Join(filepath.Dir(c.Buffer.Path), "device.key")
}

// MQTT is the uplink to the hall broker.
type MQTT struct {
	Broker       string   `toml:"broker"`
	TopicPrefix  string   `toml:"topic_prefix"`
	Username     string   `toml:"username"`
	PasswordFile string   `toml:"password_file"`
	CAFile       string   `toml:"ca_file"`
	CertFile     string   `toml:"cert_file"`
	KeyFile      string   `toml:"key_file"`
	KeepAlive    Duration `toml:"keepalive"`
	// Inflight bounds the records published and not yet acknowledged.
	Inflight int `toml:"inflight"`
	// StatusInterval is how often the retained status is refreshed.
	StatusInterval Duration `toml:"status_interval"`
}

// Buffer is the durable outbox.
type Buffer struct {
	Path       string `toml:"path"`
	MaxRecords int64  `toml:"max_records"`
	// KeepUnconfirmed and KeepUnconfirmedAge bound the records the broker
	// acknowledged that wait for the hall's stored acknowledgement (0
	// records: removed on the broker's acknowledgement, as before it).
	KeepUnconfirmed    int64    `toml:"keep_unconfirmed"`
	KeepUnconfirmedAge Duration `toml:"keep_unconfirmed_age"`
	// ConfirmWait is how long the hall may store nothing more of this
	// terminal, while it keeps acknowledging, before records it lacks are
	// published again.
	ConfirmWait Duration `toml:"confirm_wait"`
}

// Binding holds the rating rules.
type Binding struct {
	RatingWindow Duration `toml:"rating_window"`
}

// Button is one rating button, in the order presses number them (1..N).
type Button struct {
	Label        string `toml:"label"`
	Satisfaction int    `toml:"satisfaction"`
	Pin          string `toml:"pin"`
	LED          string `toml:"led"`
}

// GPIO configures the periph driver and the feedback outputs.
type GPIO struct {
	Pull       string   `toml:"pull"`       // "up", "down" or "none"
	ActiveLow  *bool    `toml:"active_low"` // default true: button to ground
	Debounce   Duration `toml:"debounce"`
	StuckAfter Duration `toml:"stuck_after"`
	LEDOn      Duration `toml:"led_on"`
	WindowLED  string   `toml:"window_led"`
	StatusLED  string   `toml:"status_led"`
	Buzzer     string   `toml:"buzzer"`
	// InvitePin is the staff's "请评价" key (optional), wired and
	// debounced like a button.
	InvitePin string `toml:"invite_pin"`
}

// Reasons configures asking for the reason of a 差评: after a counted
// rating at one of the After levels, the next press within Window is a
// reason record, its button choosing among Choices.
type Reasons struct {
	// After lists the satisfaction codes that ask; empty turns asking off.
	After  []int    `toml:"after"`
	Window Duration `toml:"window"`
	// Choices are the reasons in button order: the first is button 1's.
	// There may be fewer than buttons; a press of a button without one
	// ends the asking and is a rating press again.
	Choices []Reason `toml:"choices"`
}

// Reason is one reason a citizen can give.
type Reason struct {
	Code  string `toml:"code"`
	Label string `toml:"label"`
}

// On reports whether the terminal asks for reasons at all.
func (r Reasons) On() bool { return len(r.After) > 0 && len(r.Choices) > 0 }

// DefaultReasons are the reasons asked by default, one per default button.
// With three buttons the third is "other".
func DefaultReasons() []Reason {
	return []Reason{
		{Code: "attitude", Label: "服务态度"},
		{Code: "speed", Label: "办事效率"},
		{Code: "process", Label: "办事流程与材料"},
		{Code: "other", Label: "其他"},
	}
}

// Voice configures the spoken prompts. The player is aplay (alsa-utils)
// unless Player names another program taking the same arguments.
type Voice struct {
	Enabled bool   `toml:"enabled"`
	Device  string `toml:"device"` // ALSA device name; "" is the system default
	Dir     string `toml:"dir"`    // where invite.wav, thanks.wav, ... are
	// Volume scales the prompts, 0..100 percent, where the player
	// supports it (100 plays the files as they are).
	Volume int    `toml:"volume"`
	Player string `toml:"player"`
}

// HTTP is the local status endpoint; an empty Listen disables it.
type HTTP struct {
	Listen string `toml:"listen"`
}

// Log configures logging.
type Log struct {
	Level string `toml:"level"` // debug, info, warn, error
}

// Duration is a span of time written as a string such as "30s"; the
// collector's and the agent's configurations share it.
type Duration = duration.Duration

// DefaultButtons is the national four-button set with its default pins.
func DefaultButtons() []Button {
	return []Button{
		{Label: "very_satisfied", Satisfaction: 5, Pin: "GPIO5"},
		{Label: "satisfied", Satisfaction: 4, Pin: "GPIO6"},
		{Label: "basic", Satisfaction: 3, Pin: "GPIO13"},
		{Label: "dissatisfied", Satisfaction: 2, Pin: "GPIO19"},
	}
}

// Default returns a configuration with every default filled in and the
// identity left empty.
func Default() Config {
	t := true
	return Config{
		Device: Device{Driver: "gpio"},
		MQTT: MQTT{
			Broker:         "tcp://127.0.0.1:1883",
			TopicPrefix:    "hallrate/v1",
			KeepAlive:      duration.Of(30 * time.Second),
			Inflight:       32,
			StatusInterval: duration.Of(time.Minute),
		},
		Buffer: Buffer{Path: "/var/lib/hallrate/outbox.db", MaxRecords: 100000,
			KeepUnconfirmed: 100000, KeepUnconfirmedAge: duration.Of(7 * 24 * time.Hour), ConfirmWait: duration.Of(30 * time.Second)},
		Binding: Binding{RatingWindow: duration.Of(30 * time.Second)},
		GPIO: GPIO{
			Pull: "up", ActiveLow: &t,
			Debounce:   duration.Of(30 * time.Millisecond),
			StuckAfter: duration.Of(5 * time.Second),
			LEDOn:      duration.Of(1500 * time.Millisecond),
		},
		Log:     Log{Level: "info"},
		Reasons: Reasons{After: []int{1, 2}, Window: duration.Of(10 * time.Second)},
		Voice:   Voice{Dir: "/usr/share/hallrate/voice/zh", Volume: 100, Player: "aplay"},
	}
}

// Load reads and checks the file at path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes TOML strictly over the defaults and checks the result.
func Parse(data []byte) (Config, error) {
	c := Default()
	c.Buttons = nil
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, fmt.Errorf("config: %s: unknown key", und[0])
	}
	if len(c.Buttons) == 0 {
		c.Buttons = DefaultButtons()
	}
	if !md.IsDefined("reasons", "choices") {
		c.Reasons.Choices = DefaultReasons()
		if n := len(c.Buttons); n < len(c.Reasons.Choices) {
			// Fewer buttons than reasons: keep "other" on the last one.
			c.Reasons.Choices = append(c.Reasons.Choices[:n-1:n-1], c.Reasons.Choices[len(c.Reasons.Choices)-1])
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// oneLine renders a TOML error as one line: the key first when known, and
// any line break quoted from the input escaped.
func oneLine(err error) string {
	msg := err.Error()
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg = fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)
		if pe.LastKey != "" {
			msg = fmt.Sprintf("%s: %s (line %d)", pe.LastKey, pe.Message, pe.Position.Line)
		}
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(msg)
}

// Validate checks values that decoding alone cannot.
func (c *Config) Validate() error {
	for _, f := range []struct{ key, val string }{
		{"device.id", c.Device.ID}, {"device.hall", c.Device.Hall}, {"device.counter", c.Device.Counter},
	} {
		if f.val == "" {
			return fmt.Errorf("config: %s: missing", f.key)
		}
		if !record.ValidID(f.val) {
			return fmt.Errorf("config: %s: %q is not of [A-Za-z0-9._-]{1,64}", f.key, f.val)
		}
	}
	switch c.Device.Driver {
	case "gpio", "sim":
	default:
		return fmt.Errorf("config: device.driver: %q is neither \"gpio\" nor \"sim\"", c.Device.Driver)
	}
	if err := c.validateMQTT(); err != nil {
		return err
	}
	if err := checkStaff(c.Device.Staff); err != nil {
		return err
	}
	if c.Buffer.Path == "" {
		return errors.New("config: buffer.path: missing")
	}
	if c.Buffer.MaxRecords < 1 {
		return fmt.Errorf("config: buffer.max_records: %d is not positive", c.Buffer.MaxRecords)
	}
	if c.Buffer.KeepUnconfirmed < 0 {
		return fmt.Errorf("config: buffer.keep_unconfirmed: %d is negative (0 keeps none)", c.Buffer.KeepUnconfirmed)
	}
	if c.Buffer.KeepUnconfirmedAge.Duration < 0 {
		return fmt.Errorf("config: buffer.keep_unconfirmed_age: %s is negative (0 bounds by count alone)", c.Buffer.KeepUnconfirmedAge)
	}
	if d := c.Buffer.ConfirmWait.Duration; d < time.Second || d > time.Hour {
		return fmt.Errorf("config: buffer.confirm_wait: %s is not between 1s and 1h", d)
	}
	if c.Binding.RatingWindow.Duration <= 0 {
		return fmt.Errorf("config: binding.rating_window: %s is not positive", c.Binding.RatingWindow)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if err := c.validateButtons(); err != nil {
		return err
	}
	if err := c.validateReasons(); err != nil {
		return err
	}
	if err := c.validateVoice(); err != nil {
		return err
	}
	return c.validateGPIO()
}

// checkStaff allows a staff number or name: up to 64 characters of valid
// UTF-8 without control characters.
func checkStaff(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 64 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("config: device.staff: %q is not up to 64 printable characters", s)
	}
	return nil
}

func (c *Config) validateReasons() error {
	r := c.Reasons
	seen := map[int]bool{}
	for _, a := range r.After {
		if a < 1 || a > 5 {
			return fmt.Errorf("config: reasons.after: %d is not a national code 1..5", a)
		}
		if seen[a] {
			return fmt.Errorf("config: reasons.after: %d listed twice", a)
		}
		seen[a] = true
	}
	if r.Window.Duration < time.Second || r.Window.Duration > 5*time.Minute {
		return fmt.Errorf("config: reasons.window: %s is not within 1s..5m", r.Window)
	}
	if len(r.Choices) > len(c.Buttons) {
		return fmt.Errorf("config: reasons.choices: %d reasons for %d buttons, at most one a button", len(r.Choices), len(c.Buttons))
	}
	codes := map[string]bool{}
	for i, ch := range r.Choices {
		key := fmt.Sprintf("reasons.choices[%d]", i)
		if !record.ValidID(ch.Code) {
			return fmt.Errorf("config: %s.code: %q is not of [A-Za-z0-9._-]{1,64}", key, ch.Code)
		}
		if codes[ch.Code] {
			return fmt.Errorf("config: %s.code: %q used twice", key, ch.Code)
		}
		codes[ch.Code] = true
		if err := record.CheckReasonLabel(ch.Label); err != nil {
			return fmt.Errorf("config: %s.label: %q: not empty, at most %d bytes of printable text", key, ch.Label, record.MaxNameText)
		}
	}
	return nil
}

func (c *Config) validateVoice() error {
	v := c.Voice
	if v.Volume < 0 || v.Volume > 100 {
		return fmt.Errorf("config: voice.volume: %d is not within 0..100", v.Volume)
	}
	if strings.ContainsAny(v.Device, " \t\n\r") {
		return fmt.Errorf("config: voice.device: %q is not an ALSA device name", v.Device)
	}
	if v.Enabled && v.Dir == "" {
		return errors.New("config: voice.dir: missing")
	}
	if v.Enabled && v.Player == "" {
		return errors.New("config: voice.player: missing")
	}
	return nil
}

func (c *Config) validateMQTT() error {
	u, err := url.Parse(c.MQTT.Broker)
	if err != nil || u.Host == "" {
		return fmt.Errorf("config: mqtt.broker: %q is not a broker URL such as tcp://host:1883", c.MQTT.Broker)
	}
	switch u.Scheme {
	case "tcp", "ssl", "mqtts", "tls", "ws", "wss":
	default:
		return fmt.Errorf("config: mqtt.broker: scheme %q is not one of tcp, ssl, mqtts, ws, wss", u.Scheme)
	}
	p := c.MQTT.TopicPrefix
	if p == "" || strings.ContainsAny(p, "+#") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("config: mqtt.topic_prefix: %q must be non-empty, without wildcards or outer slashes", p)
	}
	if (c.MQTT.CertFile == "") != (c.MQTT.KeyFile == "") {
		return errors.New("config: mqtt.cert_file: cert_file and key_file go together")
	}
	if c.MQTT.Inflight < 1 || c.MQTT.Inflight > 1000 {
		return fmt.Errorf("config: mqtt.inflight: %d is not within 1..1000", c.MQTT.Inflight)
	}
	if c.MQTT.KeepAlive.Duration < time.Second {
		return fmt.Errorf("config: mqtt.keepalive: %s is shorter than 1s", c.MQTT.KeepAlive)
	}
	if c.MQTT.StatusInterval.Duration < time.Second {
		return fmt.Errorf("config: mqtt.status_interval: %s is shorter than 1s", c.MQTT.StatusInterval)
	}
	return nil
}

func (c *Config) validateButtons() error {
	if n := len(c.Buttons); n < 3 || n > 6 {
		return fmt.Errorf("config: buttons: %d buttons configured, want 3 to 6", n)
	}
	labels := map[string]bool{}
	pins := map[string]string{}
	for i, b := range c.Buttons {
		key := fmt.Sprintf("buttons[%d]", i)
		if !record.ValidID(b.Label) {
			return fmt.Errorf("config: %s.label: %q is not of [A-Za-z0-9._-]{1,64}", key, b.Label)
		}
		key = "buttons." + b.Label
		if labels[b.Label] {
			return fmt.Errorf("config: %s: label used twice", key)
		}
		labels[b.Label] = true
		if b.Satisfaction < 1 || b.Satisfaction > 5 {
			return fmt.Errorf("config: %s.satisfaction: %d is not a national code 1..5", key, b.Satisfaction)
		}
		if c.Device.Driver != "gpio" {
			continue
		}
		if b.Pin == "" {
			return fmt.Errorf("config: %s.pin: missing", key)
		}
		for _, p := range []struct{ name, pin string }{{key + ".pin", b.Pin}, {key + ".led", b.LED}} {
			if p.pin == "" {
				continue
			}
			if other, ok := pins[p.pin]; ok {
				return fmt.Errorf("config: %s: pin %q is already used by %s", p.name, p.pin, other)
			}
			pins[p.pin] = p.name
		}
	}
	return nil
}

func (c *Config) validateGPIO() error {
	g := c.GPIO
	switch g.Pull {
	case "up", "down", "none":
	default:
		return fmt.Errorf("config: gpio.pull: %q is not one of up, down, none", g.Pull)
	}
	if g.Debounce.Duration < time.Millisecond || g.Debounce.Duration > time.Second {
		return fmt.Errorf("config: gpio.debounce: %s is not within 1ms..1s", g.Debounce)
	}
	if g.StuckAfter.Duration <= g.Debounce.Duration {
		return fmt.Errorf("config: gpio.stuck_after: %s must be longer than gpio.debounce", g.StuckAfter)
	}
	if g.LEDOn.Duration <= 0 {
		return fmt.Errorf("config: gpio.led_on: %s is not positive", g.LEDOn)
	}
	if g.ActiveLow == nil {
		t := true
		c.GPIO.ActiveLow = &t
	}
	if c.Device.Driver != "gpio" {
		return nil
	}
	return c.validateOutputPins()
}

// validateOutputPins checks that the window LED, status LED and buzzer
// share no pin with each other or with a button or its LED.
func (c *Config) validateOutputPins() error {
	used := map[string]string{}
	for _, b := range c.Buttons {
		used[b.Pin] = "buttons." + b.Label + ".pin"
		if b.LED != "" {
			used[b.LED] = "buttons." + b.Label + ".led"
		}
	}
	for _, o := range []struct{ key, pin string }{
		{"gpio.invite_pin", c.GPIO.InvitePin},
		{"gpio.window_led", c.GPIO.WindowLED}, {"gpio.status_led", c.GPIO.StatusLED}, {"gpio.buzzer", c.GPIO.Buzzer},
	} {
		if o.pin == "" {
			continue
		}
		if other, ok := used[o.pin]; ok {
			return fmt.Errorf("config: %s: pin %q is already used by %s", o.key, o.pin, other)
		}
		used[o.pin] = o.key
	}
	return nil
}
