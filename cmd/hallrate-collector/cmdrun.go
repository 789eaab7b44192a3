package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hallrate/hallrate/hall/collector"
	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/internal/cli"
)

func cmdRun(ctx context.Context, args []string, io cli.IO) error {
	fs := program().Flags("run", "Run the collector: receive the terminals' records, keep each once, audit them for loss,\njoin ratings with cases and hand evaluations to the e-supervision system.", io)
	path := fs.String("config", config.DefaultPath, "configuration file (without -config, a missing default file means defaults)")
	embedded := fs.String("embedded-broker", "", "run a broker in-process listening on `ADDR` (host:port) and use it (mqtt.embedded_broker)")
	brokerURL := fs.String("broker", "", "broker `URL`, such as tcp://127.0.0.1:1883 (mqtt.broker)")
	dsn := fs.String("store", "", "database `DSN`: sqlite:///path/collector.db or postgres://user@host/db (store.dsn)")
	listen := fs.String("listen", "", "HTTP API, /metrics and /healthz on `ADDR` (host:port; http.listen)")
	out := fs.String("out", "", "also append stored records to `FILE`, one JSON object a line (store.jsonl)")
	demoTickets := fs.Bool("demo-tickets", false, "publish demonstration tickets for every counter heard from (demo.tickets)")
	def := config.Default()
	serving := fs.Duration("demo-serving", def.Demo.Serving.Duration, "how long a demonstration ticket is served (demo.serving)")
	done := fs.Duration("demo-done", def.Demo.Done.Duration, "how long a demonstration ticket stays done: the rating window (demo.done)")
	idle := fs.Duration("demo-idle", def.Demo.Idle.Duration, "pause between demonstration tickets (demo.idle)")
	summary := fs.Duration("summary-interval", def.Log.SummaryInterval.Duration, "how often to print the audit while it changes (log.summary_interval)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["broker"] && set["embedded-broker"] {
		fmt.Fprintln(io.Err, "-broker and -embedded-broker exclude each other")
		return cli.ErrUsage
	}
	cfg, err := config.Load(*path, !set["config"])
	if err != nil {
		return err
	}
	switch {
	case set["embedded-broker"]:
		cfg.MQTT.EmbeddedBroker = *embedded
	case set["broker"]:
		cfg.MQTT.Broker, cfg.MQTT.EmbeddedBroker = *brokerURL, ""
	}
	if set["out"] {
		cfg.Store.JSONL = *out
	}
	if set["store"] {
		cfg.Store.DSN = *dsn
	}
	if set["listen"] {
		cfg.HTTP.Listen = *listen
	}
	if set["demo-tickets"] {
		cfg.Demo.Tickets = *demoTickets
	}
	for name, d := range map[string]struct {
		v   time.Duration
		dst *config.Duration
	}{
		"demo-serving": {*serving, &cfg.Demo.Serving}, "demo-done": {*done, &cfg.Demo.Done},
		"demo-idle": {*idle, &cfg.Demo.Idle}, "summary-interval": {*summary, &cfg.Log.SummaryInterval},
	} {
		if set[name] {
			d.dst.Duration = d.v
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(io.Err, cfg.Log.Level)
	c, err := collector.New(cfg, collector.Parts{
		Out: io.Out, Logger: log, BrokerLogger: brokerLogger(io.Err, cfg.Log.Level), Version: version,
	})
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// brokerLogger keeps the embedded broker's chatter about every client (a
// connection that drops is a warning to it) out of the log unless debugging.
func brokerLogger(w io.Writer, level string) *slog.Logger {
	if level == "debug" {
		return newLogger(w, level).With("component", "broker")
	}
	return newLogger(w, "error").With("component", "broker")
}
