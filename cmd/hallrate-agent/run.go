package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/hallrate/hallrate/agent"
	"github.com/hallrate/hallrate/agent/watchdog"
	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/device"
	"github.com/hallrate/hallrate/devkey"
	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/internal/secretfile"
	"github.com/hallrate/hallrate/reasons"
	"github.com/hallrate/hallrate/record"
	"github.com/hallrate/hallrate/sysclock"
	"github.com/hallrate/hallrate/uplink"
	"github.com/hallrate/hallrate/voice"
)

const bootIDPath = "/proc/sys/kernel/random/boot_id"

func cmdRun(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("run", "Run the agent: read presses, keep them in the outbox, send them to the broker.", io)
	path := fs.String("config", config.DefaultPath, "configuration file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log := newLogger(io, cfg.Log.Level)
	clock, err := sysclock.NewSystem(bootIDPath)
	if err != nil {
		return err
	}
	ob, err := buffer.Open(cfg.Buffer.Path, buffer.Options{Logger: log, Check: outboxChecker(),
		KeepUnconfirmed: cfg.Buffer.KeepUnconfirmed, KeepUnconfirmedAge: cfg.Buffer.KeepUnconfirmedAge.Duration})
	if err != nil {
		return err
	}
	defer func() {
		if err := ob.Close(); err != nil {
			log.Error("close outbox", "err", err)
		}
	}()
	uc, err := uplinkConfig(cfg)
	if err != nil {
		return err
	}
	src, fb, cleanup, err := openDevice(cfg, io, log, clock)
	if err != nil {
		return err
	}
	defer cleanup()
	key, created, err := devkey.LoadOrCreate(cfg.KeyPath())
	if err != nil {
		return fmt.Errorf("config: device.key_file: %w", err)
	}
	if created {
		log.Info("made a new device signing key", "path", cfg.KeyPath(),
			"pubkey", record.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	}
	wd := newWatchdog(log)
	player, stopVoice := startVoice(ctx, cfg.Voice, log)
	defer stopVoice()
	var speaker agent.Speaker // nil: silent
	if player != nil {
		speaker = player
	}
	a, err := agent.New(agentConfig(cfg, uc), agent.Parts{
		Outbox: ob, Source: src, Feedback: fb, Clock: clock, Logger: log, Key: key,
		Heartbeat: wd.Beat, Voice: speaker,
	})
	if err != nil {
		return err
	}
	log.Info("agent starting", "version", version, "device", cfg.Device.ID, "hall", cfg.Device.Hall,
		"counter", cfg.Device.Counter, "driver", cfg.Device.Driver, "broker", redact(cfg.MQTT.Broker),
		"outbox", cfg.Buffer.Path, "epoch", ob.Epoch(), "pending", ob.Len(), "last_seq", ob.LastSeq(),
		"http", cfg.HTTP.Listen)
	stopHTTP := serveStatus(ctx, cfg.HTTP.Listen, a, log)
	err = a.Run(ctx)
	// Nothing to do if systemd is not listening; sdNotify says so itself.
	_ = sdNotify("STOPPING=1")
	stopHTTP()
	log.Info("agent stopped", "pending", ob.Len(), "last_seq", ob.LastSeq())
	return err
}

// newWatchdog feeds systemd's watchdog from the agent's heartbeat. Outside
// systemd (no NOTIFY_SOCKET) its messages go nowhere.
func newWatchdog(log *slog.Logger) *watchdog.Watchdog {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog setting unreadable; sending READY only", "err", err)
	}
	return watchdog.New(watchdog.Config{Notify: sdNotify, Interval: interval, Logger: log})
}

func sdNotify(state string) error {
	if _, err := daemon.SdNotify(false, state); err != nil {
		first, _, _ := strings.Cut(state, "\n")
		return fmt.Errorf("sd_notify %s: %w", first, err)
	}
	return nil
}

// moveCredentials takes a user name and password written into the broker
// URL out of it, into the fields paho would have filled from it anyway: the
// URL is logged, the password never is.
func moveCredentials(uc *uplink.Config) {
	u, err := url.Parse(uc.Broker)
	if err != nil || u.User == nil {
		return
	}
	if uc.Username == "" {
		uc.Username = u.User.Username()
	}
	if p, ok := u.User.Password(); ok && uc.Password == "" {
		uc.Password = p
	}
	u.User = nil
	uc.Broker = u.String()
}

// redact hides a password given in the broker URL's user info.
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return "(unparsable broker URL)"
	}
	return u.Redacted()
}

func newLogger(io cli.IO, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(io.Err, &slog.HandlerOptions{Level: l}))
}

// startVoice starts the prompt player when [voice] is enabled. The player
// is nil (silent) otherwise; stop ends what is playing.
func startVoice(ctx context.Context, vc config.Voice, log *slog.Logger) (*voice.Player, func()) {
	if !vc.Enabled {
		return nil, func() {}
	}
	p := voice.New(voice.Config{Player: vc.Player, Device: vc.Device, Dir: vc.Dir, Volume: vc.Volume, Logger: log})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	log.Info("voice prompts on", "player", vc.Player, "device", vc.Device, "dir", vc.Dir, "volume", vc.Volume)
	return p, func() {
		cancel()
		<-done
	}
}

func agentConfig(cfg config.Config, uc uplink.Config) agent.Config {
	buttons := make([]agent.Button, len(cfg.Buttons))
	for i, b := range cfg.Buttons {
		buttons[i] = agent.Button{Label: b.Label, Satisfaction: b.Satisfaction}
	}
	choices := make([]reasons.Choice, len(cfg.Reasons.Choices))
	for i, c := range cfg.Reasons.Choices {
		choices[i] = reasons.Choice{Code: c.Code, Label: c.Label}
	}
	return agent.Config{
		Device: cfg.Device.ID, Hall: cfg.Device.Hall, Counter: cfg.Device.Counter,
		Version: version, Buttons: buttons,
		RatingWindow: cfg.Binding.RatingWindow.Duration,
		Staff:        cfg.Device.Staff,
		Reasons: reasons.Config{
			After: cfg.Reasons.After, Window: cfg.Reasons.Window.Duration, Choices: choices,
		},
		MaxRecords: cfg.Buffer.MaxRecords,
		Uplink:     uc,
	}
}

func uplinkConfig(cfg config.Config) (uplink.Config, error) {
	m := cfg.MQTT
	uc := uplink.Config{
		Broker:         m.Broker,
		ClientID:       "hallrate-agent-" + cfg.Device.ID,
		Username:       m.Username,
		KeepAlive:      m.KeepAlive.Duration,
		Inflight:       m.Inflight,
		StatusInterval: m.StatusInterval.Duration,
		Topics:         uplink.CounterTopics(m.TopicPrefix, cfg.Device.Hall, cfg.Device.Counter),
		Device:         cfg.Device.ID,
		ConfirmWait:    cfg.Buffer.ConfirmWait.Duration,
	}
	if m.KeyFile != "" {
		if err := devkey.CheckPrivate(m.KeyFile); err != nil {
			return uc, fmt.Errorf("config: mqtt.key_file: %w", err)
		}
	}
	if m.PasswordFile != "" {
		pw, err := secretfile.Read(m.PasswordFile)
		if err != nil {
			return uc, fmt.Errorf("config: mqtt.password_file: %w", err)
		}
		uc.Password = pw
	}
	moveCredentials(&uc)
	scheme, _, _ := strings.Cut(m.Broker, "://")
	switch scheme {
	case "ssl", "tls", "mqtts", "wss":
		tc, err := uplink.TLSConfig(uplink.TLSFiles{CAFile: m.CAFile, CertFile: m.CertFile, KeyFile: m.KeyFile})
		if err != nil {
			return uc, fmt.Errorf("config: mqtt.ca_file: %w", err)
		}
		uc.TLS = tc
	default:
		if m.CAFile != "" || m.CertFile != "" {
			return uc, fmt.Errorf("config: mqtt.broker: %q is plaintext but TLS files are configured; use ssl:// or mqtts://", m.Broker)
		}
	}
	return uc, nil
}

// openDevice builds the input driver and feedback of the configured driver.
func openDevice(cfg config.Config, io cli.IO, log *slog.Logger, clock sysclock.Clock) (device.Source, device.Feedback, func(), error) {
	switch cfg.Device.Driver {
	case "sim":
		return &device.Sim{In: io.In, Buttons: len(cfg.Buttons), Logger: log, Clock: clock},
			device.NewLogFeedback(log), func() {}, nil
	default:
		return openGPIO(cfg, log)
	}
}
