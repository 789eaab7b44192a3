// Package config loads and checks the collector's TOML configuration. Every
// error names the key at fault in one line, for example
// "config: mqtt.brokr: unknown key".
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hallrate/hallrate/internal/duration"
	"github.com/hallrate/hallrate/record"
)

// DefaultPath is where the collector looks for its configuration.
const DefaultPath = "/etc/hallrate/collector.toml"

// Config is the collector configuration.
type Config struct {
	Hall     Hall     `toml:"hall"`
	MQTT     MQTT     `toml:"mqtt"`
	Store    Store    `toml:"store"`
	HTTP     HTTP     `toml:"http"`
	ESup     ESup     `toml:"esup"`
	Demo     Demo     `toml:"demo"`
	Log      Log      `toml:"log"`
	Followup Followup `toml:"followup"`
	Report   Report   `toml:"report"`
	Trust    Trust    `toml:"trust"`
	Tickets  Tickets  `toml:"tickets"`
}

// Tickets configures the polling of a queue system's database (the 中间库
// pattern): each new row of SQLQuery becomes a ticket published for its
// counter, as POST /api/v1/counters/{counter}/ticket does.
type Tickets struct {
	// SQLDriver is "postgres" or "mysql"; empty turns polling off.
	SQLDriver string `toml:"sql_driver"`
	// SQLDSN is the database to poll, in the driver's form
	// (postgres://user@host/db, or user:pass@tcp(host:3306)/db for mysql).
	SQLDSN string `toml:"sql_dsn"`
	// SQLQuery returns the rows newer than its one parameter (the cursor),
	// in order, with the columns cursor, counter, ticket, state, staff,
	// item, at and optionally projectNo.
	SQLQuery string `toml:"sql_query"`
	// PollInterval is how often the query runs.
	PollInterval Duration `toml:"poll_interval"`
	// CursorStart is the cursor of the first poll, before any row was
	// taken.
	CursorStart string `toml:"cursor_start"`
}

// Trust configures the verification of records (docs/trust.md).
type Trust struct {
	// KeysFile is the device inventory: "device hall counter pubkey" a
	// line. Empty: nothing can be verified, every record is unverified.
	KeysFile string `toml:"keys_file"`
	// AcceptUnverified lets ratings of devices without a trusted key count
	// (still shown unverified) while a hall enrols its terminals. Without
	// a keys file they always count. Flagged ratings never do.
	AcceptUnverified bool `toml:"accept_unverified"`
	// CollectorIdentity is the collector's certificate name, the user the
	// generated ACL gives read access to everything.
	CollectorIdentity string `toml:"collector_identity"`
}

// Followup configures the follow-ups (整改工单) of bad ratings.
type Followup struct {
	// WorkingDays is how many working days a follow-up has.
	WorkingDays int `toml:"working_days"`
	// ReasonWait is how long the alert and the evaluation of a 差评 wait
	// for the reason the citizen may give on the terminal: the terminals'
	// reasons.window plus a margin. "0s" does not wait.
	ReasonWait Duration `toml:"reason_wait"`
	// Calendar, when set, is a file of holidays and working weekend days
	// ("2026-10-01 holiday", "2026-10-10 workday"), one a line.
	Calendar string `toml:"calendar"`
}

// Report configures the monthly report.
type Report struct {
	// Points are the score points of satisfaction levels 1 to 5.
	Points []float64 `toml:"points"`
}

// Hall identifies the service hall the collector serves.
type Hall struct {
	ID       string `toml:"id"`
	Timezone string `toml:"timezone"`
	AreaCode string `toml:"area_code"`
}

// MQTT is the connection to the hall broker.
type MQTT struct {
	// Broker is the broker's URL. It is not used when EmbeddedBroker is
	// set: the collector then connects to its own broker.
	Broker string `toml:"broker"`
	// EmbeddedBroker, when set, is the host:port an in-process broker
	// listens on.
	EmbeddedBroker string `toml:"embedded_broker"`
	TopicPrefix    string `toml:"topic_prefix"`
	// ShareGroup names the shared subscription group of the rating topics
	// on an external broker; empty subscribes plainly.
	ShareGroup   string `toml:"share_group"`
	ClientID     string `toml:"client_id"`
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	// CAFile, CertFile and KeyFile are PEM files for TLS to the broker:
	// the CA of the broker's certificate (system roots when empty) and the
	// collector's client certificate and key, for mutual TLS.
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// StoredEvery is how often each terminal's stored acknowledgement is
	// published again when nothing new was stored: the heartbeat on which
	// agents resend what the hall never got.
	StoredEvery Duration `toml:"stored_every"`
}

// Store is the database.
type Store struct {
	// DSN is sqlite:///path/to/file.db or postgres://user@host/db.
	DSN string `toml:"dsn"`
	// JSONL, when set, is a file every newly stored record is also
	// appended to, one JSON object a line: an export, not the store.
	JSONL string `toml:"jsonl"`
}

// HTTP is the dashboard, API, metrics and health listener.
type HTTP struct {
	Listen    string `toml:"listen"`
	TokenFile string `toml:"token_file"`
	// Hosts are the names the collector is reached by, besides the
	// address it listens on and localhost: "name" (any port) or
	// "name:port". Requests carrying another Host are refused, which
	// closes DNS rebinding.
	Hosts []string `toml:"hosts"`
}

// ESup is the e-supervision export.
type ESup struct {
	Sink        string   `toml:"sink"`
	URL         string   `toml:"url"`
	MatchWindow Duration `toml:"match_window"`
	PF          string   `toml:"pf"`
	Wrap        string   `toml:"wrap"`
	OKField     string   `toml:"ok_field"`
	OKValue     string   `toml:"ok_value"`
	// RetryMin and RetryMax bound the backoff between attempts.
	RetryMin Duration `toml:"retry_min"`
	RetryMax Duration `toml:"retry_max"`
	// Timeout bounds one POST.
	Timeout Duration `toml:"timeout"`
	// Lease is how long an evaluation being sent is this collector's
	// alone; a collector that dies leaves it to the others after that.
	Lease Duration `toml:"lease"`
}

// Demo configures the demonstration ticket lifecycle, which stands in for
// a queue system.
type Demo struct {
	Tickets bool     `toml:"tickets"`
	Serving Duration `toml:"serving"`
	Done    Duration `toml:"done"`
	Idle    Duration `toml:"idle"`
	// SkipCounters get no demonstration tickets: counters run by the
	// staff key alone.
	SkipCounters []string `toml:"skip_counters"`
}

// Log configures logging and the audit summary.
type Log struct {
	Level string `toml:"level"` // debug, info, warn, error
	// SummaryInterval is how often the audit summary is printed while
	// something changed; it is always printed on stop.
	SummaryInterval Duration `toml:"summary_interval"`
}

// Duration is a span of time written as a string such as "30s"; the
// collector's and the agent's configurations share it.
type Duration = duration.Duration

// Default returns the configuration used for every key a file leaves out.
func Default() Config {
	return Config{
		Hall: Hall{ID: "h1", Timezone: "Asia/Shanghai", AreaCode: "620100"},
		MQTT: MQTT{
			Broker:      "tcp://127.0.0.1:1883",
			TopicPrefix: "hallrate/v1",
			ShareGroup:  "hallrate-collector",
			StoredEvery: duration.Of(30 * time.Second),
		},
		Store: Store{DSN: "sqlite:///var/lib/hallrate/collector.db"},
		HTTP:  HTTP{Listen: "127.0.0.1:9110"},
		ESup: ESup{Sink: "http", MatchWindow: duration.Of(24 * time.Hour), PF: "5",
			RetryMin: duration.Of(time.Second), RetryMax: duration.Of(5 * time.Minute),
			Timeout: duration.Of(30 * time.Second), Lease: duration.Of(2 * time.Minute)},
		Followup: Followup{WorkingDays: 7, ReasonWait: duration.Of(15 * time.Second)},
		Report:   Report{Points: []float64{0, 40, 60, 80, 100}},
		Demo: Demo{
			Serving: duration.Of(20 * time.Second),
			Done:    duration.Of(15 * time.Second),
			Idle:    duration.Of(3 * time.Second),
		},
		Log:     Log{Level: "info", SummaryInterval: duration.Of(time.Minute)},
		Trust:   Trust{CollectorIdentity: "hall-collector"},
		Tickets: Tickets{PollInterval: duration.Of(2 * time.Second), CursorStart: "0"},
	}
}

// Load reads and checks the file at path. When optional is true and the
// file does not exist, Load returns the defaults.
func Load(path string, optional bool) (Config, error) {
	b, err := os.ReadFile(path)
	if optional && errors.Is(err, os.ErrNotExist) {
		c := Default()
		return c, c.Validate()
	}
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b)
}

// Parse decodes TOML strictly over the defaults and checks the result.
func Parse(data []byte) (Config, error) {
	c := Default()
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s", oneLine(err))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Config{}, fmt.Errorf("config: %s: unknown key", und[0])
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func oneLine(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.LastKey != "" {
			return fmt.Sprintf("%s: %s (line %d)", pe.LastKey, msg, pe.Position.Line)
		}
		return fmt.Sprintf("line %d: %s", pe.Position.Line, msg)
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// Validate checks values that decoding alone cannot. Call it again after
// overriding keys from the command line.
func (c *Config) Validate() error {
	if !record.ValidID(c.Hall.ID) {
		return fmt.Errorf("config: hall.id: %q is not of [A-Za-z0-9._-]{1,64}", c.Hall.ID)
	}
	if _, err := time.LoadLocation(c.Hall.Timezone); err != nil || c.Hall.Timezone == "" {
		return fmt.Errorf("config: hall.timezone: %q is not a known time zone", c.Hall.Timezone)
	}
	if err := c.validateMQTT(); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"demo.serving", c.Demo.Serving}, {"demo.done", c.Demo.Done}, {"demo.idle", c.Demo.Idle}, {"log.summary_interval", c.Log.SummaryInterval},
		{"esup.match_window", c.ESup.MatchWindow}, {"esup.retry_min", c.ESup.RetryMin}, {"esup.retry_max", c.ESup.RetryMax},
		{"esup.timeout", c.ESup.Timeout}, {"esup.lease", c.ESup.Lease}} {
		if d.v.Duration <= 0 {
			return fmt.Errorf("config: %s: %s is not positive", d.key, d.v)
		}
	}
	if err := c.validateHall(); err != nil {
		return err
	}
	if !record.ValidID(c.Trust.CollectorIdentity) {
		return fmt.Errorf("config: trust.collector_identity: %q is not of [A-Za-z0-9._-]{1,64}", c.Trust.CollectorIdentity)
	}
	if err := c.validateTickets(); err != nil {
		return err
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return fmt.Errorf("config: log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	return nil
}

func (c *Config) validateTickets() error {
	t := c.Tickets
	switch t.SQLDriver {
	case "":
		if t.SQLDSN != "" || t.SQLQuery != "" {
			return errors.New("config: tickets.sql_driver: missing (postgres or mysql) for sql_dsn and sql_query")
		}
		return nil
	case "postgres", "mysql":
	default:
		return fmt.Errorf("config: tickets.sql_driver: %q is neither postgres nor mysql", t.SQLDriver)
	}
	if t.SQLDSN == "" {
		return errors.New("config: tickets.sql_dsn: missing")
	}
	if t.SQLQuery == "" {
		return errors.New("config: tickets.sql_query: missing")
	}
	if t.PollInterval.Duration < 100*time.Millisecond {
		return fmt.Errorf("config: tickets.poll_interval: %s is shorter than 100ms", t.PollInterval)
	}
	return nil
}

func (c *Config) validateHall() error {
	d := c.Store.DSN
	if !strings.HasPrefix(d, "sqlite://") && !strings.HasPrefix(d, "postgres://") && !strings.HasPrefix(d, "postgresql://") ||
		d == "sqlite://" {
		return fmt.Errorf("config: store.dsn: %q is not sqlite:///path or postgres://user@host/db", d)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		return fmt.Errorf("config: http.listen: %q is not host:port", c.HTTP.Listen)
	}
	for _, h := range c.HTTP.Hosts {
		if h == "" || strings.ContainsAny(h, "/ @?#*") {
			return fmt.Errorf("config: http.hosts: %q is not a host name or host:port", h)
		}
	}
	switch c.ESup.Sink {
	case "http":
		if c.ESup.URL != "" {
			if u, err := url.Parse(c.ESup.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("config: esup.url: %q is not an http:// or https:// URL", c.ESup.URL)
			}
		}
	case "table", "none":
	default:
		return fmt.Errorf("config: esup.sink: %q is not one of http, table, none", c.ESup.Sink)
	}
	if (c.ESup.OKField == "") != (c.ESup.OKValue == "") {
		return errors.New("config: esup.ok_field: ok_field and ok_value go together")
	}
	if c.ESup.RetryMax.Duration < c.ESup.RetryMin.Duration {
		return fmt.Errorf("config: esup.retry_max: %s is less than retry_min %s", c.ESup.RetryMax, c.ESup.RetryMin)
	}
	// Every POST must end a fifth of the lease before the lease does
	// (esup.LeaseMargin), or another collector could send it too.
	if lease, timeout := c.ESup.Lease.Duration, c.ESup.Timeout.Duration; lease-lease/5 < timeout {
		return fmt.Errorf("config: esup.lease: %s cannot cover a POST of esup.timeout %s and its margin of a fifth of the lease; make it at least %s",
			c.ESup.Lease, c.ESup.Timeout, (timeout*5+3)/4)
	}
	if c.Followup.WorkingDays < 0 || c.Followup.WorkingDays > 365 {
		return fmt.Errorf("config: followup.working_days: %d is not in 0..365", c.Followup.WorkingDays)
	}
	if w := c.Followup.ReasonWait.Duration; w < 0 || w > 10*time.Minute {
		return fmt.Errorf("config: followup.reason_wait: %s is not within 0s..10m", c.Followup.ReasonWait)
	}
	if len(c.Report.Points) != 5 {
		return fmt.Errorf("config: report.points: want 5 numbers (levels 1 to 5), have %d", len(c.Report.Points))
	}
	return nil
}

func (c *Config) validateMQTT() error {
	m := c.MQTT
	if d := m.StoredEvery.Duration; d < time.Second || d > time.Hour {
		return fmt.Errorf("config: mqtt.stored_every: %s is not between 1s and 1h", d)
	}
	if m.EmbeddedBroker != "" {
		if _, _, err := net.SplitHostPort(m.EmbeddedBroker); err != nil {
			return fmt.Errorf("config: mqtt.embedded_broker: %q is not host:port", m.EmbeddedBroker)
		}
	} else {
		u, err := url.Parse(m.Broker)
		if err != nil || u.Host == "" {
			return fmt.Errorf("config: mqtt.broker: %q is not a broker URL such as tcp://host:1883", m.Broker)
		}
		switch u.Scheme {
		case "tcp", "ssl", "mqtts", "tls", "ws", "wss":
		default:
			return fmt.Errorf("config: mqtt.broker: scheme %q is not one of tcp, ssl, mqtts, ws, wss", u.Scheme)
		}
	}
	p := m.TopicPrefix
	if p == "" || strings.ContainsAny(p, "+#") || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("config: mqtt.topic_prefix: %q must be non-empty, without wildcards or outer slashes", p)
	}
	if (m.CertFile == "") != (m.KeyFile == "") {
		return errors.New("config: mqtt.cert_file: cert_file and key_file go together")
	}
	if strings.ContainsAny(m.ShareGroup, "/+#") {
		return fmt.Errorf("config: mqtt.share_group: %q must not contain / + or #", m.ShareGroup)
	}
	return nil
}

// ClientID returns mqtt.client_id, or the default
// hallrate-collector-{hall.id}-{hostname} when it is empty.
func (c *Config) ClientID(hostname string) string {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID
	}
	return "hallrate-collector-" + c.Hall.ID + "-" + hostname
}
